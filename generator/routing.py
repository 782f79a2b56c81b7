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
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from generator.answering import LocalAnswer, Shadow, set_local_server
from generator.backends import Backend, BackendOutput, BackendRequest
from generator.errors import BackendError, GeneratorError
from generator.metrics import wilson_interval
from generator.records import CallRecord
from generator.worker import BoundedWorker

log = logging.getLogger(__name__)

__all__ = [
    "ConfidenceGate",
    "Decision",
    "Router",
    "RoutingPolicy",
    "ShadowBackend",
    "SiteServer",
    "SiteState",
    "SpotCheckBackend",
    "decide",
    "install_local_server",
    "start_foreign_session",
]


class SiteState(StrEnum):
    TEACHER = "teacher"
    SHADOW = "shadow"
    LOCAL = "local"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The numbers behind every routing decision (defaults documented in docs/routing.md)."""

    min_shadow_samples: int = 30
    """Shadow answers needed before a student may serve."""
    promote_lower_bound: float = 0.80
    """Wilson 95 % lower bound of shadow validity (first attempt) that promotion needs."""
    min_confidence: float | None = None
    """Serve a student output only if its mean token log-probability is at least this (None: any)."""
    spot_check_rate: float = 0.05
    """Share of locally served requests also sent to the teacher for comparison."""
    rollback_min_samples: int = 20
    """Live samples of a version (and of its predecessor) needed before a rollback is judged."""
    rollback_validity_margin: float = 0.10
    """Roll back when live validity's Wilson upper bound is below the predecessor's rate minus this."""
    rollback_fun_margin: float = 0.10
    """... or when mean fun is this much below the predecessor's and the drop is significant."""
    alpha: float = 0.05
    """Significance level of the fun test (one-sided Mann-Whitney U)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RoutingPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise GeneratorError(f"unknown routing setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_data_dir(cls, data_dir: str | Path | None = None) -> RoutingPolicy:
        """``[routing]`` of the data dir's ``forge.toml`` (defaults when absent), as the facade reads it."""
        from generator.paths import CONFIG_NAME, read_table
        from generator.paths import data_dir as resolve

        return cls.from_mapping(read_table(resolve(data_dir, create=False) / CONFIG_NAME, "routing"))


# ---------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a decision was based on; stored with every state change."""

    n: int = 0
    valid: int = 0
    rate: float = 0.0
    lower: float = 0.0
    upper: float = 1.0
    fun_mean: float | None = None
    fun_n: int = 0

    @classmethod
    def of(cls, valid_flags: Sequence[bool], funs: Sequence[float] = ()) -> Evidence:
        n = len(valid_flags)
        k = int(sum(1 for v in valid_flags if v))
        lo, hi = wilson_interval(k, n)
        fun_mean = float(np.mean(funs)) if len(funs) else None
        return cls(n=n, valid=k, rate=(k / n if n else 0.0), lower=lo, upper=hi, fun_mean=fun_mean, fun_n=len(funs))


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """A site's persisted routing state."""

    state: SiteState = SiteState.TEACHER
    version: str | None = None
    """The student version the state refers to (shadowed, served, or rolled back)."""
    rejected: tuple[str, ...] = ()
    """Versions rolled back at this site; never shadowed again."""
    since: float | None = field(default=None, compare=False)
    """When the site entered this state (store time); live evidence counts calls from then on."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A transition (or none) with the reason and the evidence behind it."""

    site: str
    before: SiteStatus
    after: SiteStatus
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _fun_drop_significant(current: Sequence[float], baseline: Sequence[float], policy: RoutingPolicy) -> tuple[bool, float]:
    """True when ``current`` fun is lower than ``baseline`` by the margin and a one-sided
    Mann-Whitney U test says the drop is not chance.  Returns (significant, p-value)."""
    if len(current) < policy.rollback_min_samples or len(baseline) < policy.rollback_min_samples:
        return False, 1.0
    from scipy.stats import mannwhitneyu

    if float(np.mean(baseline)) - float(np.mean(current)) < policy.rollback_fun_margin:
        return False, 1.0
    p = float(mannwhitneyu(current, baseline, alternative="less").pvalue)
    return p < policy.alpha, p


def decide(
    site: str,
    status: SiteStatus,
    *,
    promoted: str | None,
    previous: str | None,
    shadow: Evidence,
    live: Evidence,
    live_fun: Sequence[float],
    baseline: Evidence,
    baseline_fun: Sequence[float],
    policy: RoutingPolicy,
) -> Decision:
    """The routing state machine as a pure function (tested without a store or a model).

    ``promoted`` is the registry's current version for the site, ``previous`` the
    one before it (the rollback target).  ``shadow`` is the shadow evidence of
    ``promoted``; ``live`` / ``live_fun`` the first-attempt validity and fun
    scores of ``status.version`` while it serves; ``baseline`` / ``baseline_fun``
    those of its predecessor (the teacher, or the previous version).
    """
    s = status
    if promoted is None:
        if s.state in (SiteState.SHADOW, SiteState.LOCAL):
            return Decision(site, s, SiteStatus(SiteState.TEACHER, None, s.rejected), "no promoted version in the registry")
        return Decision(site, s, s, "no promoted version")

    if s.state in (SiteState.TEACHER, SiteState.ROLLED_BACK):
        if promoted in s.rejected:
            return Decision(site, s, s, f"version {promoted} was rolled back here; waiting for a new one")
        return Decision(site, s, SiteStatus(SiteState.SHADOW, promoted, s.rejected), f"version {promoted} promoted: shadowing it")

    if s.version != promoted:
        # The registry moved on (a newer promotion, or a manual rollback): shadow what it holds now.
        if promoted in s.rejected:
            return Decision(site, s, SiteStatus(SiteState.TEACHER, None, s.rejected), f"registry points at rejected {promoted}")
        return Decision(site, s, SiteStatus(SiteState.SHADOW, promoted, s.rejected), f"registry now holds {promoted}: shadowing it")

    if s.state is SiteState.SHADOW:
        ev = {"shadow": asdict(shadow), "threshold": policy.promote_lower_bound, "min_samples": policy.min_shadow_samples}
        if shadow.n < policy.min_shadow_samples:
            return Decision(site, s, s, f"shadowing: {shadow.n}/{policy.min_shadow_samples} samples", ev)
        if shadow.lower >= policy.promote_lower_bound:
            return Decision(
                site, s, SiteStatus(SiteState.LOCAL, promoted, s.rejected),
                f"shadow validity {shadow.rate:.1%} (95 % lower bound {shadow.lower:.3f} ≥ {policy.promote_lower_bound}) over {shadow.n}: serving locally",
                ev,
            )
        return Decision(site, s, s, f"shadow lower bound {shadow.lower:.3f} < {policy.promote_lower_bound}: keep shadowing", ev)

    # LOCAL: watch for a regression against the predecessor.
    ev = {"live": asdict(live), "baseline": asdict(baseline)}
    reasons: list[str] = []
    if live.n >= policy.rollback_min_samples and baseline.n >= policy.rollback_min_samples:
        if live.upper < baseline.rate - policy.rollback_validity_margin:
            reasons.append(
                f"live validity {live.rate:.1%} (upper bound {live.upper:.3f}) below predecessor {baseline.rate:.1%} - {policy.rollback_validity_margin}"
            )
    significant, p = _fun_drop_significant(live_fun, baseline_fun, policy)
    ev["fun_p_value"] = p
    if significant:
        reasons.append(f"fun {np.mean(live_fun):.3f} below predecessor {np.mean(baseline_fun):.3f} (p={p:.3g})")
    if not reasons:
        return Decision(site, s, s, "serving locally; no regression", ev)
    rejected = (*s.rejected, promoted)
    if previous is not None and previous not in rejected:
        after = SiteStatus(SiteState.LOCAL, previous, rejected)
        target = f"previous version {previous}"
    else:
        after = SiteStatus(SiteState.ROLLED_BACK, None, rejected)
        target = "the teacher"
    return Decision(site, s, after, "regression: " + "; ".join(reasons) + f" -> rolled back to {target}", ev)


# ---------------------------------------------------------------- backend wrappers


class Recorder(Protocol):
    """Where wrappers write what they observed (the store, or a list in tests)."""

    def record_call(self, record: CallRecord) -> None: ...


Validator = Callable[[BackendOutput, BackendRequest], tuple[bool, list[dict[str, Any]]]]


def validate_output(out: BackendOutput, req: BackendRequest) -> tuple[bool, list[dict[str, Any]]]:
    """Judge a level backend's output with the gates (the site validator for levels)."""
    from generator.validation import validate_level

    report = validate_level(out.level if out.level is not None else out.raw, req.spec)
    return report.valid, [dict(f) if isinstance(f, Mapping) else _failure_dict(f) for f in report.failures]


def _failure_dict(f: Any) -> dict[str, Any]:
    return {k: getattr(f, k) for k in ("gate", "code", "message", "where") if hasattr(f, k)}


def _result_of(out: BackendOutput) -> Any:
    if out.level is not None:
        return out.level.to_dict()
    try:
        import msgspec

        return msgspec.json.decode(out.raw)
    except Exception:  # noqa: BLE001 - unparsable output is recorded raw
        return None


@dataclass
class ShadowBackend:
    """Serve ``primary``; run ``shadow`` on the same request and record it, unserved.

    With a ``submit`` function (the router's shadow worker) the shadow answer is
    computed in the background, so shadowing never delays the level the player
    gets; without one it runs inline (tests).  ``submit`` returns False when the
    worker is saturated, and that request is simply not shadowed.
    """

    primary: Backend
    shadow: Backend
    site: str
    recorder: Recorder | None
    version: str | None = None
    validator: Validator = validate_output
    name: str = ""
    submit: Callable[[Callable[[], None]], bool] | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.primary.name

    def generate(self, request: BackendRequest) -> BackendOutput:
        out = self.primary.generate(request)
        if self.submit is None:
            self._shadow(request)
        elif not self.submit(lambda: self._shadow(request)):
            log.debug("shadow worker busy: request at %s not shadowed", self.site)
        return out

    def _shadow(self, request: BackendRequest) -> None:
        t0 = time.perf_counter()
        rec = CallRecord(site=self.site, backend=self.shadow.name, model_version=self.version,
                         args={"spec": _spec_dict(request.spec), "seed": request.seed}, served=False, attempt=1)
        try:
            sout = self.shadow.generate(BackendRequest(request.spec, request.seed, None, 1, None))
            rec.valid, rec.failures = self.validator(sout, request)
            rec.raw_output, rec.result, rec.model = sout.raw, _result_of(sout), sout.model
            rec.confidence, rec.completion_tokens = sout.confidence, sout.completion_tokens
        except Exception as exc:  # noqa: BLE001 - a shadow failure must never reach the player
            rec.valid, rec.error = False, f"{type(exc).__name__}: {exc}"
        rec.latency_ms = (time.perf_counter() - t0) * 1000
        _record(self.recorder, rec)


@dataclass
class ConfidenceGate:
    """Pass a backend's output through only when its confidence clears ``min_confidence``;
    otherwise raise :class:`BackendError` so the facade's cascade moves on."""

    inner: Backend
    min_confidence: float | None
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def generate(self, request: BackendRequest) -> BackendOutput:
        out = self.inner.generate(request)
        if self.min_confidence is not None and out.confidence is not None and out.confidence < self.min_confidence:
            raise BackendError(f"{self.name}: confidence {out.confidence:.3f} below {self.min_confidence}")
        return out


@dataclass
class SpotCheckBackend:
    """Serve ``inner``; for a seeded share of requests also ask ``reference`` and record it unserved.

    The reference is asked only after the served output is returned: with a
    ``submit`` function (the router's shadow worker) in the background, so a
    slow teacher never adds its latency to the served request nor eats into
    its deadline; ``submit`` returns False when the worker is saturated, and
    that request is not checked.  Without ``submit`` it runs inline (tests).
    """

    inner: Backend
    reference: Backend
    site: str
    recorder: Recorder | None
    rate: float
    seed: int = 0
    validator: Validator = validate_output
    name: str = ""
    submit: Callable[[Callable[[], None]], bool] | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name
        self._rng = random.Random(self.seed)

    def generate(self, request: BackendRequest) -> BackendOutput:
        out = self.inner.generate(request)
        with self._lock:
            check = self._rng.random() < self.rate
        if not check:
            return out
        if self.submit is None:
            self._check(request)
        elif not self.submit(lambda: self._check(request)):
            log.debug("shadow worker busy: request at %s not spot-checked", self.site)
        return out

    def _check(self, request: BackendRequest) -> None:
        t0 = time.perf_counter()
        rec = CallRecord(site=self.site, backend=self.reference.name, served=False,
                         args={"spec": _spec_dict(request.spec), "seed": request.seed, "spot_check": True})
        try:
            # Its own request: the served request's deadline has nothing left to protect.
            ref = self.reference.generate(BackendRequest(request.spec, request.seed, None, 1, None))
            rec.valid, rec.failures = self.validator(ref, request)
            rec.raw_output, rec.result, rec.model = ref.raw, _result_of(ref), ref.model
        except Exception as exc:  # noqa: BLE001 - a failed check must never reach the player
            rec.valid, rec.error = False, f"{type(exc).__name__}: {exc}"
        rec.latency_ms = (time.perf_counter() - t0) * 1000
        _record(self.recorder, rec)


def _spec_dict(spec: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(spec)


def _record(recorder: Recorder | None, rec: CallRecord) -> None:
    if recorder is None:
        return
    try:
        recorder.record_call(rec)
    except Exception:  # noqa: BLE001 - recording must not break serving
        log.exception("could not record a %s call at %s", rec.backend, rec.site)


# ---------------------------------------------------------------- the router


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
    ) -> None:
        self.store = store
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
                if d.after.version and d.after.state in (SiteState.SHADOW, SiteState.LOCAL)}
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
        return SiteStatus(SiteState(row.state), row.version, tuple(evidence.get("rejected", ())),
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
        for sc in self.store.iter_calls(site):
            r = sc.record
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
        return {
            "shadow": Evidence.of(shadow_flags),
            "live": Evidence.of(live_flags, live_fun),
            "live_fun": live_fun,
            "baseline": Evidence.of(base_flags, base_fun),
            "baseline_fun": base_fun,
        }

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
            current = self.registry.current(site)
            promoted = getattr(current, "version", None)
            ev = self._evidence(site, status, promoted)
            d = decide(
                site, status, promoted=promoted, previous=self._previous(site, status.version),
                shadow=ev["shadow"], live=ev["live"], live_fun=ev["live_fun"],
                baseline=ev["baseline"], baseline_fun=ev["baseline_fun"], policy=self.policy,
            )
            if d.changed:
                if d.after.state is SiteState.ROLLED_BACK or (d.after.state is SiteState.LOCAL and d.after.version != promoted):
                    self._registry_rollback(site, d)
                self._save(d)
            decisions.append(d)
        self._retire_stale(decisions)
        return decisions

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

    def backends_for(self, site: str, defaults: Sequence[Backend]) -> list[Backend]:
        """The cascade a request at ``site`` uses now (procedural is appended by the facade)."""
        status = self.status(site)
        if status.state is SiteState.SHADOW and status.version and defaults:
            try:
                student = self.student(site, status.version)
            except Exception:  # noqa: BLE001 - a broken model means teacher only
                log.exception("site %s: cannot load student %s for shadowing", site, status.version)
                return list(defaults)
            student = _Leased(student, self, (site, status.version))
            return [ShadowBackend(defaults[0], student, site, self.store, status.version, submit=self._submit_shadow),
                    *defaults[1:]]
        if status.state is SiteState.LOCAL and status.version:
            try:
                student = self.student(site, status.version)
            except Exception:  # noqa: BLE001
                log.exception("site %s: cannot load student %s; serving the teacher", site, status.version)
                return list(defaults)
            served: Backend = ConfidenceGate(_Leased(student, self, (site, status.version)), self.policy.min_confidence)
            if defaults and self.policy.spot_check_rate > 0:
                served = SpotCheckBackend(served, defaults[0], site, self.store, self.policy.spot_check_rate,
                                          seed=self._seed, submit=self._submit_shadow)
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


LocalAnswerer = Callable[[dict[str, Any]], Any]
"""``args -> result | LocalAnswer | None``: a student answering one (non-level) call site."""
LocalFactory = Callable[[str, Path, str], LocalAnswerer]


def _default_local_factory(site: str, model_dir: Path, version: str) -> LocalAnswerer:
    from generator.local.student import LocalStudent

    student = LocalStudent.load(model_dir, quantize="int8", site=site)
    counter = iter(range(1 << 62))

    def answer(args: dict[str, Any]) -> Any:
        out = student.generate(args, seed=next(counter))  # result None: no usable answer, recorded as such
        return LocalAnswer(result=out.result, raw=out.text, confidence=out.mean_logprob,
                           model="student", model_version=version)

    return answer


class SiteServer:
    """The capture plugin's local server for the non-level call sites of any Jac program.

    Called as ``server(site, args)`` before the model: a site the router has in
    state ``local`` is answered by its student.  ``shadow_for(site)`` tells the
    plugin, after the model answered, which student to run beside it in the
    background for a site in state ``shadow``.  The level site is left to the
    facade, which routes, shadows and spot-checks it itself.  A student that
    cannot be loaded is remembered and declined from then on, so a broken model
    costs one failed load per process, not one per call.
    """

    def __init__(self, router: Router, factory: LocalFactory | None = None) -> None:
        self.router = router
        self.model_name = "student"
        self._make = factory or _default_local_factory
        self._loaded: dict[tuple[str, str], LocalAnswerer] = {}
        self._broken: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}  #: one per model: a slow load blocks no other site

    def __call__(self, site: str, args: dict[str, Any]) -> Any:
        status = self._status(site, SiteState.LOCAL)
        if status is None:
            return None
        version = status.version or ""
        answerer = self._answerer(site, version)
        if answerer is None:
            return None
        try:
            answer = answerer(args)
        except Exception as exc:  # noqa: BLE001 - a failed attempt: recorded, and the model answers
            log.warning("site %s: student %s failed (%s: %s); the model answers", site, version, type(exc).__name__, exc)
            answer = None
        return _stamp(answer, version)

    def shadow_for(self, site: str) -> Any:
        """A :class:`~generator.answering.Shadow` for a site in state ``shadow``, else None (cheap: one store read)."""
        status = self._status(site, SiteState.SHADOW)
        if status is None or (site, status.version) in self._broken:
            return None
        version = status.version or ""

        def answer(args: dict[str, Any]) -> Any:
            answerer = self._answerer(site, version)
            if answerer is None:
                raise GeneratorError(f"site {site}: student {version} could not be loaded")
            return answerer(args)

        return Shadow(answer=answer, model_version=version)

    def _status(self, site: str, wanted: SiteState) -> SiteStatus | None:
        from generator.callsite import LEVEL_SITE

        if site == LEVEL_SITE:
            return None
        status = self.router.status(site)
        return status if status.state is wanted and status.version else None

    def _answerer(self, site: str, version: str) -> LocalAnswerer | None:
        key = (site, version)
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            if key in self._broken:
                return None
            if key not in self._loaded:
                try:
                    model_dir = Path(self.router.registry.model_dir(site, version))
                    self._loaded[key] = self._make(site, model_dir, version)
                except Exception:  # noqa: BLE001 - a broken model means the model answers, as before
                    log.exception("site %s: cannot load student %s; the model keeps answering", site, version)
                    self._broken.add(key)
                    return None
            return self._loaded[key]


def _stamp(answer: Any, version: str) -> Any:
    """Give a bare answer (None included: the student had none) the serving version,
    so the router's live evidence counts it, usable or not."""
    if isinstance(answer, LocalAnswer):
        return answer if answer.model_version else replace(answer, model_version=version)
    if answer is not None and hasattr(answer, "result"):
        return answer
    return LocalAnswer(result=answer, model="student", model_version=version)


def install_local_server(router: Router, *, factory: LocalFactory | None = None) -> SiteServer:
    """Let promoted students answer ``by llm()`` calls of *any* Jac program.

    Registers a :class:`SiteServer` with the capture plugin: for a call site the
    router has in state ``local`` (levels excluded: the facade serves those), the
    site's student answers; the plugin checks the answer against the function's
    return type and otherwise calls the model as usual.  For a site in state
    ``shadow`` the plugin runs the student in the background after the model
    answered and records it unserved, which is the evidence that moves the site
    to ``local``.  Returns the server.
    """
    server = SiteServer(router, factory)
    set_local_server(server)
    return server


def start_foreign_session(
    store: Any, data_dir: str | Path | None = None, *, factory: LocalFactory | None = None
) -> tuple[Router, SiteServer] | None:
    """One program run is one session for the non-level call sites of any Jac program.

    Builds a router over ``store`` and the data dir's model registry, applies the
    state machine once (``Router.refresh`` for every site but the level site,
    whose sessions the facade owns) and installs the :class:`SiteServer`.
    Returns None, installing nothing, when no non-level site has a model or a
    routing state, so a data dir without models costs a directory listing.
    """
    from generator.callsite import LEVEL_SITE
    from generator.registry import Registry

    registry = Registry.in_data_dir(data_dir)
    router = Router(store, registry, policy=RoutingPolicy.from_data_dir(data_dir))
    sites = [s for s in router.sites() if s != LEVEL_SITE]
    if not sites:
        return None
    router.refresh(sites)  # each change is logged and stored as a site event
    return router, install_local_server(router, factory=factory)


def _default_student_factory(site: str, model_dir: Path, version: str) -> Backend:
    from generator.local.serving import student_backend

    return student_backend(model_dir, version=version)
