"""The router: which backends serve a call site, persisted in the store, changed once per session."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from generator.backends.base import Backend, BackendOutput, BackendRequest
from generator.errors import GeneratorError
from generator.answering.worker import BoundedWorker
from generator.routing.policy import RouteState, RoutingPolicy
from generator.routing.state_machine import Decision, Evidence, SiteStatus, decide
from generator.routing.wrappers import ConfidenceGate, EnvelopeGate, ShadowBackend, SpecEnvelope, SpotCheckBackend

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the router


#: The site event recorded when SERVING.json names a version that is not on disk.
DANGLING_EVENT = "registry:dangling_pointer"

StudentFactory = Callable[[str, Path, str], Backend]
"""``(site, model_dir, version) -> Backend`` — builds a student backend for a registry version."""


class Router:
    """Routes call sites between teacher and student, persisting state in the store.

    ``backends_for(site, defaults)`` returns the backend list a facade request
    uses (the facade appends procedural last).  ``refresh()`` applies the state
    machine once per session; the facade calls it from ``start_session``.
    """

    def __init__(
        self,
        store: Any,
        registry: Any,
        *,
        policy: RoutingPolicy | None = None,
        student_factory: StudentFactory | None = None,
        seed: int = 0,
        judges: Any = None,
    ) -> None:
        self.store = store
        #: how each site's answers are compared with the teacher's (a ``JudgeConfig``; None: defaults per return type)
        self.judges = judges
        self.registry = registry
        self.policy = policy or RoutingPolicy()
        self._student_factory = student_factory or _default_student_factory
        self._students: dict[tuple[str, str], Backend] = {}
        self._inflight: dict[tuple[str, str], int] = {}  #: requests inside each loaded student right now
        self._retired: dict[tuple[str, str], Backend] = {}  #: no longer routed, closed when their last request ends
        self._seed = seed
        self._lock = threading.Lock()
        #: shadow answers and spot checks, off the request path; beyond 8 queued, requests go unchecked
        self._shadow = BoundedWorker("forge-shadow", max_backlog=8)

    # -- background shadow answers ------------------------------------------
    def _submit_shadow(self, job: Callable[[], None]) -> bool:
        return self._shadow.submit(job)

    def drain(self, timeout: float | None = None) -> int:
        """Wait (up to ``timeout`` s) for background shadow answers; returns how many are still running."""
        return self._shadow.drain(timeout)

    def close(self, *, wait: bool = True) -> None:
        """Stop the shadow worker (finishing what it started when ``wait``) and close loaded students."""
        self._shadow.shutdown(wait=wait)
        with self._lock:
            students = [*self._students.values(), *self._retired.values()]
            self._students, self._retired = {}, {}
        for backend in students:  # a GGUF student is a worker process
            _close_backend(backend)

    # -- loaded students: leased per request, closed once no longer routed and idle
    def _enter(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._inflight[key] = self._inflight.get(key, 0) + 1

    def _leave(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._inflight[key] -= 1
            done = self._retired.pop(key) if self._inflight[key] == 0 and key in self._retired else None
        if done is not None:
            _close_backend(done)

    def _retire_stale(self, decisions: Sequence[Decision]) -> None:
        """Close the students a refresh stopped routing to (a rollback, a newer promotion).

        A student still answering a request made before the refresh is closed
        when that request ends, so it finishes on the model it started with.
        """
        refreshed = {d.site for d in decisions}
        keep = {(d.site, d.after.version) for d in decisions
                if d.after.version and d.after.state in (RouteState.SHADOW, RouteState.LOCAL)}
        closing = []
        with self._lock:
            for key in [k for k in self._students if k[0] in refreshed and k not in keep]:
                backend = self._students.pop(key)
                if self._inflight.get(key, 0):
                    self._retired[key] = backend
                else:
                    closing.append(backend)
        for backend in closing:
            log.info("closing a student no longer routed: %r", getattr(backend, "name", backend))
            _close_backend(backend)

    # -- state persistence -------------------------------------------------
    def status(self, site: str) -> SiteStatus:
        row = self.store.get_site_state(site)
        if row is None:
            return SiteStatus()
        evidence = getattr(row, "evidence", None) or {}
        return SiteStatus(RouteState(row.state), row.version, tuple(evidence.get("rejected", ())),
                          since=getattr(row, "updated", None))

    def _save(self, d: Decision) -> None:
        ev = dict(d.evidence, rejected=list(d.after.rejected), reason=d.reason)
        self.store.set_site_state(d.site, d.after.state.value, d.after.version, ev)
        self.store.add_site_event(d.site, f"{d.before.state.value}->{d.after.state.value}", ev)
        log.info("site %s: %s", d.site, d.reason)

    # -- evidence from the store ------------------------------------------
    def _evidence(self, site: str, status: SiteStatus, promoted: str | None) -> dict[str, Any]:
        shadow_flags: list[bool] = []
        live_flags: list[bool] = []
        live_fun: list[float] = []
        base_flags: list[bool] = []
        base_fun: list[float] = []
        previous = self._previous(site, status.version)
        records = []
        for sc in self.store.iter_calls(site):
            r = sc.record
            records.append(r)
            if r.valid is None or r.attempt != 1:
                continue
            is_student = r.backend == "student"
            if is_student and not r.served and r.model_version == promoted and not (r.args or {}).get("spot_check"):
                shadow_flags.append(bool(r.valid))
            # Live: the version's own attempts since it began serving -- not its shadow answers from before.
            if (status.version is not None and is_student and r.model_version == status.version
                    and (r.served or r.valid is False) and (status.since is None or r.created >= status.since)):
                live_flags.append(bool(r.valid))
                if sc.fun is not None:
                    live_fun.append(float(sc.fun))
            elif r.served and ((previous is None and not is_student) or (previous is not None and r.model_version == previous)):
                base_flags.append(bool(r.valid))
                if sc.fun is not None:
                    base_fun.append(float(sc.fun))
        shadow_agreement, live_agreement = self._agreement(site, records, status, promoted)
        return {
            "shadow": Evidence.of(shadow_flags),
            "shadow_agreement": shadow_agreement,
            "live_agreement": live_agreement,
            "live": Evidence.of(live_flags, live_fun),
            "live_fun": live_fun,
            "baseline": Evidence.of(base_flags, base_fun),
            "baseline_fun": base_fun,
        }

    def _agreement(self, site: str, records: list[Any], status: SiteStatus,
                   promoted: str | None) -> tuple[Evidence | None, Evidence | None]:
        """Shadow agreement of ``promoted`` and spot-checked live agreement of ``status.version``
        (None, None for a site judged by validity alone, such as the level site)."""
        from generator.store.callsite import LEVEL_SITE

        if site == LEVEL_SITE or not records:
            return None, None
        from generator.evaluate.agreement import JudgeConfig, site_agreement

        config = self.judges if self.judges is not None else JudgeConfig()
        shadow = site_agreement(records, config=config)
        if not shadow.spec.compares:
            return None, None
        live = site_agreement(records, shadow.spec, since=status.since) if status.state is RouteState.LOCAL else None
        return (Evidence.of([c.agree for c in shadow.shadow.get(promoted, [])]),
                Evidence.of([c.agree for c in live.spot.get(status.version, [])]) if live is not None else None)

    def _previous(self, site: str, version: str | None) -> str | None:
        for m in self.registry.versions(site):
            if getattr(m, "version", None) == version:
                return getattr(m, "parent", None)
        return None

    # -- public -------------------------------------------------------------
    def sites(self) -> list[str]:
        """Sites with a registered model or a routing state."""
        names = set(self.registry.sites())
        names.update(row.site for row in self.store.list_site_states())
        return sorted(names)

    def refresh(self, sites: Iterable[str] | None = None) -> list[Decision]:
        """Apply the state machine to every known site; persist and return the decisions."""
        decisions = []
        for site in sites if sites is not None else self.sites():
            status = self.status(site)
            self._note_dangling_pointer(site)
            current = self.registry.current(site)
            promoted = getattr(current, "version", None)
            ev = self._evidence(site, status, promoted)
            d = decide(
                site, status, promoted=promoted, previous=self._previous(site, status.version),
                shadow=ev["shadow"], live=ev["live"], live_fun=ev["live_fun"],
                baseline=ev["baseline"], baseline_fun=ev["baseline_fun"], policy=self.policy,
                shadow_agreement=ev["shadow_agreement"], live_agreement=ev["live_agreement"],
            )
            if d.changed:
                if d.after.state is RouteState.ROLLED_BACK or (d.after.state is RouteState.LOCAL and d.after.version != promoted):
                    self._registry_rollback(site, d)
                self._save(d)
            decisions.append(d)
        self._retire_stale(decisions)
        return decisions

    def _note_dangling_pointer(self, site: str) -> None:
        """Record (once per pointer) that SERVING.json names a missing version and what serves instead."""
        pointer_of = getattr(self.registry, "serving_pointer", None)
        if pointer_of is None:
            return
        pointer = pointer_of(site)
        if not pointer["dangling"]:
            return
        evidence = {"pointer": pointer["pointer"], "fallback": pointer["fallback"],
                    "reason": f"SERVING.json names {pointer['pointer']}, which is missing; "
                              f"{pointer['fallback'] or 'the teacher'} serves instead"}
        last = next((e for e in reversed(self.store.site_events(site)) if e.kind == DANGLING_EVENT), None)
        if last is not None and (last.evidence or {}).get("pointer") == evidence["pointer"] \
                and (last.evidence or {}).get("fallback") == evidence["fallback"]:
            return
        log.warning("site %s: %s", site, evidence["reason"])
        self.store.add_site_event(site, DANGLING_EVENT, evidence)

    def _registry_rollback(self, site: str, d: Decision) -> None:
        try:
            self.registry.rollback(site)
        except Exception:  # noqa: BLE001 - the routing state is authoritative for serving
            log.exception("registry rollback at %s failed; routing still serves %s", site, d.after.state)

    def student(self, site: str, version: str) -> Backend:
        """The student backend for a version, loaded once and kept for the session."""
        key = (site, version)
        with self._lock:
            if key not in self._students:
                manifest = next((m for m in self.registry.versions(site) if m.version == version), None)
                if manifest is None:
                    raise GeneratorError(f"site {site}: version {version} is not in the registry")
                self._students[key] = self._student_factory(site, Path(self.registry.model_dir(site, version)), version)
            return self._students[key]

    def envelope(self, site: str, version: str) -> SpecEnvelope | None:
        """The spec ranges ``version`` was trained on (from its manifest), or None: it serves every spec."""
        manifest = next((m for m in self.registry.versions(site) if m.version == version), None)
        return SpecEnvelope.from_metrics(manifest.metrics) if manifest is not None else None

    def backends_for(self, site: str, defaults: Sequence[Backend]) -> list[Backend]:
        """The cascade a request at ``site`` uses now (procedural is appended by the facade)."""
        status = self.status(site)
        if status.state is RouteState.SHADOW and status.version and defaults:
            try:
                student = self.student(site, status.version)
            except Exception:  # noqa: BLE001 - a broken model means teacher only
                log.exception("site %s: cannot load student %s for shadowing", site, status.version)
                return list(defaults)
            student = _Leased(student, self, (site, status.version))
            return [ShadowBackend(defaults[0], student, site, self.store, status.version, submit=self._submit_shadow,
                                  envelope=self.envelope(site, status.version)),
                    *defaults[1:]]
        if status.state is RouteState.LOCAL and status.version:
            try:
                student = self.student(site, status.version)
            except Exception:  # noqa: BLE001
                log.exception("site %s: cannot load student %s; serving the teacher", site, status.version)
                return list(defaults)
            served: Backend = ConfidenceGate(_Leased(student, self, (site, status.version)), self.policy.min_confidence)
            if defaults and self.policy.spot_check_rate > 0:
                served = SpotCheckBackend(served, defaults[0], site, self.store, self.policy.spot_check_rate,
                                          seed=self._seed, submit=self._submit_shadow)
            envelope = self.envelope(site, status.version)
            if envelope is not None:  # outside it the student declines and the teacher serves, unrecorded as evidence
                served = EnvelopeGate(served, envelope)
            return [served, *defaults]
        return list(defaults)


class _Leased:
    """A loaded student as one request's cascade holds it: the router counts the requests inside it."""

    def __init__(self, inner: Backend, router: Router, key: tuple[str, str]) -> None:
        self.inner, self.name, self._router, self._key = inner, inner.name, router, key

    def generate(self, request: BackendRequest) -> BackendOutput:
        self._router._enter(self._key)
        try:
            return self.inner.generate(request)
        finally:
            self._router._leave(self._key)

    def __getattr__(self, name: str) -> Any:  # model_version, worker, ...: the student's own
        return getattr(self.inner, name)


def _close_backend(backend: Any) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - closing must not stop the others
            log.exception("closing student backend %r failed", backend)


def _default_student_factory(site: str, model_dir: Path, version: str) -> Backend:
    from generator.backends.student import student_backend

    return student_backend(model_dir, version=version)
