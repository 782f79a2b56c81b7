"""Backends that wrap a student for routing: shadow answers, a confidence gate, spot checks against the teacher."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from generator.backends.base import Backend, BackendOutput, BackendRequest
from generator.errors import BackendDeclined, BackendError
from generator.local.registry import SPEC_RANGE_FIELDS
from generator.store.records import CallRecord

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- backend wrappers


class Recorder(Protocol):
    """Where wrappers write what they observed (the store, or a list in tests)."""

    def record_call(self, record: CallRecord) -> None: ...


Validator = Callable[[BackendOutput, BackendRequest], tuple[bool, list[dict[str, Any]]]]


def validate_output(out: BackendOutput, req: BackendRequest) -> tuple[bool, list[dict[str, Any]]]:
    """Judge a level backend's output with the gates (the site validator for levels)."""
    from generator.validation import failure_dict, validate_level

    report = validate_level(out.level if out.level is not None else out.raw, req.spec)
    return report.valid, [failure_dict(f) for f in report.failures]


@dataclass(frozen=True)
class SpecEnvelope:
    """The spec ranges a student was trained and judged on: ``{field: (low, high)}``, inclusive.

    A student serves, and is shadowed, only inside them; the teacher takes
    the rest.  The trainer records them per version (the smallest and
    largest value of each field over the training levels it learned whole,
    ``metrics["spec_ranges"]`` in its manifest; ``trainer.pipeline.spec_ranges``).

    >>> env = SpecEnvelope({"width": (16, 40), "height": (12, 16), "area": (192, 480)})
    >>> env.outside({"width": 20, "height": 14}), env.outside({"width": 40, "height": 16})
    (None, 'area 640 is outside the 192-480 it was trained on')
    """

    ranges: Mapping[str, tuple[int, int]]

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any] | None) -> SpecEnvelope | None:
        """The envelope a version's manifest metrics record, or None (older versions: no limit)."""
        raw = (metrics or {}).get("spec_ranges")
        if not isinstance(raw, Mapping):
            return None
        ranges: dict[str, tuple[int, int]] = {}
        for name, lo_hi in raw.items():
            if name in SPEC_RANGE_FIELDS and isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
                try:
                    ranges[name] = (int(lo_hi[0]), int(lo_hi[1]))
                except (TypeError, ValueError):
                    continue
        return cls(ranges) if ranges else None

    def outside(self, spec: Any) -> str | None:
        """Why ``spec`` (a dict or a ``LevelSpec``) lies outside, or None when it lies inside."""
        for name, (lo, hi) in self.ranges.items():
            if name == "area":
                w, h = (spec.get(k) if isinstance(spec, Mapping) else getattr(spec, k, None) for k in ("width", "height"))
                value = w * h if isinstance(w, int) and isinstance(h, int) else None
            else:
                value = spec.get(name) if isinstance(spec, Mapping) else getattr(spec, name, None)
            if isinstance(value, (int, float)) and not lo <= value <= hi:
                return f"{name} {value} is outside the {lo}-{hi} it was trained on"
        return None


@dataclass
class EnvelopeGate:
    """Decline (:class:`BackendDeclined`) requests whose spec lies outside the student's envelope."""

    inner: Backend
    envelope: SpecEnvelope
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def generate(self, request: BackendRequest) -> BackendOutput:
        why = self.envelope.outside(request.spec)
        if why is not None:
            version = getattr(self.inner, "model_version", None)
            raise BackendDeclined(f"{self.name} {version or ''}: {why}".replace("  ", " "))
        return self.inner.generate(request)

    def __getattr__(self, name: str) -> Any:  # model_version, worker, ...: the student's own
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)


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
    #: the student is shadowed only on specs inside it (None: on every spec)
    envelope: SpecEnvelope | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.primary.name

    def generate(self, request: BackendRequest) -> BackendOutput:
        out = self.primary.generate(request)
        if self.envelope is not None and self.envelope.outside(request.spec) is not None:
            return out  # the student would not serve it, so its answer there is no evidence either
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
