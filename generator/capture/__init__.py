"""Automatic capture of every ``by llm()`` call, in any Jac program.

:class:`CapturePlugin` is a jaclang plugin (entry point group ``jac``, name
``dungeon_forge_capture``).  With this package installed, jaclang loads it in
every process that runs Jac code, and its ``call_llm`` / ``acall_llm`` hooks
wrap byllm's: each call is recorded as a :class:`~generator.store.records.CallRecord`
with its call-site id (``module:qualname#schema-hash``, from the *caller
function*, never from prompt text), arguments, messages, output schema, raw
output, parsed result, model, latency, tokens, cost, error and a validity
verdict from :mod:`generator.validation.sites`.

Where the record goes:

* if :data:`generator.store.records.CURRENT_SLOT` holds a slot, the facade is
  recording this call itself: the plugin fills the slot and stores nothing;
* else through a sink set with :func:`set_record_sink`, by default the
  SQLite store (``generator.store.Store``) of the data directory, or, while
  the store cannot be opened, a JSONL file ``runs/capture-pending.jsonl``
  that is moved into the store the next time it opens.

The plugin never changes what the program sees: the result and any exception
are passed through untouched, and a failure of the capture itself is logged,
never raised.  The one deliberate exception is :func:`set_local_server`
(local student serving): when it answers a site, its answer is returned
instead of calling the model, and the call is recorded with backend
``"student"``.

Routing session: at the first ``by llm()`` call of a process, when the data
directory's model registry holds a promoted student for a non-level call
site, the plugin starts a routing session (one program run = one session):
``generator.routing.start_foreign_session`` applies the per-site state machine
once and installs its server, which answers sites in state ``local`` with
their student and, for sites in state ``shadow``, has the plugin run the
student on a background worker after the model answered and record its
validated answer unserved, paired with the model's answer to the same call
(the router judges agreement, not only validity).  Students load at the
session start; at exit queued shadow answers get a bounded wait
(``[routing] shadow_exit_wait_s``) and calls left unanswered are recorded as
skipped.  A share of the calls a student served is spot-checked against the
model in the background.  ``FORGE_LOCAL_SERVING=0`` turns the session off;
docs/routing.md has the states.

This package is imported by jaclang while jaclang itself is still loading, so
it imports neither jaclang nor byllm at module level; every use of either is in
:mod:`generator.capture.byllm_api`.

Modules: ``byllm_api`` (the jaclang/byllm boundary), ``plugin`` (the hooks and
their load order), ``call`` (one call: describe, ask the local answerer,
record), ``describe`` (site, arguments, schema, raw output, verdict),
``metering`` (tokens and cost), ``transport`` (the HTTP requests behind a
call, also observed by the facade per attempt), ``sink`` (where records go),
``shadow`` (background student answers), ``session`` (the routing session of
a run).  The record type and call-site ids are the store's
(:mod:`generator.store.records`, :mod:`generator.store.callsite`).
The local-answer interface shared with :mod:`generator.routing` is
:mod:`generator.answering`.
"""


from __future__ import annotations

from typing import Any

from generator.answering import LocalAnswer, LocalServer, Shadow, get_local_server, set_local_server, teacher_only
from generator.capture.describe import to_jsonable
from generator.capture.plugin import ensure_outermost, install
from generator.capture.session import LOCAL_SERVING_ENV, end_session
from generator.capture.shadow import drain_shadows
from generator.capture.sink import PENDING_FILE, RecordSink, observe, set_record_sink

__all__ = [
    "LOCAL_SERVING_ENV",
    "PENDING_FILE",
    "CapturePlugin",
    "LocalAnswer",
    "LocalServer",
    "RecordSink",
    "Shadow",
    "drain_shadows",
    "end_session",
    "ensure_outermost",
    "get_local_server",
    "install",
    "observe",
    "set_local_server",
    "set_record_sink",
    "teacher_only",
    "to_jsonable",
]


def __getattr__(name: str) -> Any:
    # jaclang's loader fetches ``CapturePlugin`` from the entry point right before
    # registering it.  Resolving the name here (not as a plain module attribute)
    # lets the model-calling plugins be registered first even when this package was
    # imported before jaclang, so the capture hook always wraps byllm's.
    if name == "CapturePlugin":
        from generator.capture.plugin import resolve

        return resolve()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
