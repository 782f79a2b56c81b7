"""Per-call-site routing: who answers a call site, and when that changes.

Each call site moves through four states (``docs/routing.md`` has the picture)::

    teacher ──(a version is promoted in the registry)──▶ shadow
    shadow  ──(Wilson 95 % lower bound of shadow validity ≥ threshold,
               over ≥ min samples)──────────────────────▶ local
    local   ──(live validity or fun significantly below the
               predecessor's)──▶ previous version (local) or rolled_back
    rolled_back ──(a *different* version is promoted)──▶ shadow

* **teacher**: the configured teacher (LLM, or procedural offline) serves.
* **shadow**: the teacher serves; the student answers the same request beside
  it, its output is validated and recorded (``served=False``), never shown.
* **local**: the student serves when its output is valid and confident,
  otherwise the facade's cascade moves on to the teacher, then procedural.
  A small share of locally served requests is spot-checked against the
  teacher and the comparison is recorded.
* **rolled_back**: the teacher serves again after a regression; the evidence
  is in the store's site events.

Transitions are decided only in :meth:`Router.refresh`, which the facade calls
at the start of each play session, so a new model takes effect at the next
session and a generation already in flight finishes on the backends it
started with (a request holds the backend list it was given).

Modules: ``policy`` (states, numbers), ``state_machine`` (``decide``),
``wrappers`` (shadow, confidence gate, spot check), ``router`` (``Router``),
``foreign`` (``SiteServer`` for any Jac program's call sites; it reaches the
capture plugin only through :mod:`generator.answering`).
"""

from __future__ import annotations

from generator.routing.foreign import SiteServer, install_local_server, start_foreign_session
from generator.routing.policy import RouteState, RoutingPolicy
from generator.routing.router import Router
from generator.routing.state_machine import Decision, Evidence, SiteStatus, decide
from generator.routing.wrappers import ConfidenceGate, ShadowBackend, SpotCheckBackend, validate_output

__all__ = [
    "ConfidenceGate",
    "Decision",
    "Evidence",
    "RouteState",
    "Router",
    "RoutingPolicy",
    "ShadowBackend",
    "SiteServer",
    "SiteStatus",
    "SpotCheckBackend",
    "decide",
    "install_local_server",
    "start_foreign_session",
    "validate_output",
]
