"""The facade the engine asks for levels: route, validate, retry, fall back, record.

Size: over 400 lines on purpose. The cascade, the deadline, the retries and the
recording are one request's control flow; the backends, routing and store it
drives live in their own packages.

:class:`LevelGenerator` implements the engine's ``LevelSource``.  For each
request it walks a *cascade* of backends (from the config, or from a router
that knows which call sites a local student serves).  Each backend gets up to
``max_attempts`` tries; every output is checked by the validator and an
invalid one is retried with the validator's feedback.  The procedural backend
is always last and always valid, so a request ends with a valid level.

A per-request deadline bounds the whole: backend calls run in a worker thread
and are abandoned when the time left (minus what the procedural fallback
needs) runs out, so a hung API cannot freeze the game.

Every attempt becomes one :class:`~generator.store.records.CallRecord` at the level
call site, grouped by ``request_id``; the attempt whose level was returned has
``served=True`` and its ``call_id`` is the level's generation id (what
telemetry and fun scores join to).

>>> from engine.core.level import LevelSpec
>>> gen = LevelGenerator(["procedural"], store=False)
>>> got = gen.generate(LevelSpec(width=20, height=14, difficulty=2, enemies=2, items=1, theme="cave"), seed=1)
>>> got.backend, got.attempts
('procedural', 1)
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from engine.core.source import SourcedLevel
from generator.backends import Backend, BackendOutput, BackendRequest, ProceduralBackend
from generator.backends.factory import make_backend
from generator.settings import GeneratorConfig
from generator.errors import BackendDeclined, BackendError, ConfigError, GeneratorError
from generator.capture.transport import observe as observe_http
from generator.store.records import CURRENT_SLOT, CallRecord, CaptureSlot
from generator.validation.report import failure_dict

if TYPE_CHECKING:
    from engine.core.level import Level, LevelSpec
    from generator.store import Store
    from generator.store.telemetry_sink import StoreSink

log = logging.getLogger(__name__)

__all__ = ["GeneratedLevel", "LevelGenerator", "RoutingHook", "make_backend"]

try:  # the call-site id of jac/levels.jac design_level
    from generator.store.callsite import LEVEL_SITE
except ImportError:  # pragma: no cover - callsite ships with the package
    LEVEL_SITE = "jac.levels:design_level#00000000"


@dataclass(frozen=True, slots=True)
class GeneratedLevel(SourcedLevel):
    """A valid level and where it came from (a :class:`SourcedLevel` with extras)."""

    request_id: str = ""
    seed: int = 0
    tried: tuple[str, ...] = ()  #: backends asked, in order (the last one served)
    feedback: tuple[str, ...] = field(default=(), repr=False)  #: validator feedback of failed attempts


class RoutingHook(Protocol):
    """What a routing hook offers the facade (``generator.routing.Router`` is the real one)."""

    def backends_for(self, site: str, defaults: Sequence[Backend]) -> list[Backend]: ...


Validator = Callable[["Level | str | bytes", "LevelSpec"], Any]
"""``(level_or_raw, spec) -> report`` with ``valid``, ``failures``, ``level``, ``feedback()``."""


def _default_validator(level_or_raw: Any, spec: LevelSpec) -> Any:
    from generator.validation import validate_level

    return validate_level(level_or_raw, spec)


class _Timeout(Exception):
    pass


class LevelGenerator:
    """Serves valid levels to the engine; records every attempt in the store.

    ``backends``: backend objects or names (``"llm"``, ``"student"``,
    ``"procedural"``); ``None`` takes the cascade from :class:`GeneratorConfig`
    (``forge.toml`` and ``FORGE_*``), reloaded at each :meth:`start_session`.
    ``store``: a :class:`~generator.store.Store` to record into; ``None`` opens
    ``forge.db`` in the data dir on first use (and closes it in :meth:`close`);
    ``False`` records nothing.  ``router``: optional hook with
    ``backends_for(site, defaults)`` deciding the cascade per session (and
    ``refresh()``, called by :meth:`start_session`); ``"auto"`` builds
    :class:`generator.routing.Router` over the store and the data dir's model
    registry, so a promoted student is shadowed, then served.
    """

    def __init__(
        self,
        backends: Sequence[Backend | str] | None = None,
        *,
        store: Store | None | bool = None,
        data_dir: str | os.PathLike[str] | None = None,
        max_attempts: int | None = None,
        deadline_s: float | None = None,
        router: RoutingHook | str | None = None,
        config: GeneratorConfig | None = None,
        validator: Validator | None = None,
        fallback: Backend | None = None,
        site: str = LEVEL_SITE,
    ) -> None:
        self.data_dir = data_dir
        self.site = site
        self._store_arg = store
        self._store: Store | None = store if store not in (None, False, True) else None  # type: ignore[assignment]
        self._owns_store = False
        self._lock = threading.RLock()
        self.router: RoutingHook | None = None
        self._explicit_backends = list(backends) if backends is not None else None
        self._explicit_config = config
        self._overrides = {"max_attempts": max_attempts, "deadline_s": deadline_s}
        self._validate = validator or _default_validator
        self._fallback: Backend = fallback or ProceduralBackend()
        self._session_id: str | None = None
        self._abandoned = 0
        self.config = self._load_config()
        self._defaults = self._build_backends()
        self.router = self._auto_router(data_dir) if router == "auto" else router  # type: ignore[assignment]

    # ------------------------------------------------------------------ setup

    def _auto_router(self, data_dir: str | os.PathLike[str] | None) -> RoutingHook | None:
        """``router="auto"``: per-site routing from the store and the model registry."""
        from generator.local.registry import Registry
        from generator.routing import Router, RoutingPolicy

        store = self.store if self._store_arg is not False else None
        if store is None:
            raise ConfigError("router='auto' needs a store (routing state lives there); do not pass store=False")
        from generator.evaluate.agreement import JudgeConfig

        return Router(store, Registry.in_data_dir(data_dir), policy=RoutingPolicy.from_data_dir(data_dir),
                      judges=JudgeConfig.load(data_dir))

    def _load_config(self) -> GeneratorConfig:
        base = self._explicit_config or GeneratorConfig.load(self.data_dir)
        over = {k: v for k, v in self._overrides.items() if v is not None}
        try:
            return base.replace(**over) if over else base
        except TypeError as exc:  # pragma: no cover - keys are fixed above
            raise ConfigError(str(exc)) from None

    def _build_backends(self) -> list[Backend]:
        """The configured cascade without the final fallback."""
        items: Sequence[Backend | str] = (
            self._explicit_backends if self._explicit_backends is not None else self.config.cascade(data_dir=self.data_dir)
        )
        out: list[Backend] = []
        for item in items:
            if isinstance(item, str):
                try:
                    backend = make_backend(item, self.config, data_dir=self.data_dir, site=self.site)
                except ConfigError:
                    if self._explicit_backends is not None:
                        raise
                    # A configured backend that cannot run (no promoted model, no jaclang)
                    # must not stop the game: the rest of the cascade serves.
                    log.warning("backend %r is configured but unavailable; skipped", item, exc_info=True)
                    continue
            else:
                backend = item
            if isinstance(backend, ProceduralBackend):
                continue  # procedural is the fallback, always last
            out.append(backend)
        return out

    @property
    def backends(self) -> list[Backend]:
        """The cascade a request would use now, fallback included."""
        return [*self._cascade(), self._fallback]

    @property
    def store(self) -> Store | None:
        """The store attempts are recorded in (opened on first use), or None when not recording."""
        if self._store_arg is False or not self.config.record:
            return None
        with self._lock:
            if self._store is None:
                from generator.paths import db_path
                from generator.store import Store

                self._store = Store.open(db_path(self.data_dir))
                self._owns_store = True
            return self._store

    def start_session(self, session_id: str) -> None:
        """Reload settings and routing (a newly promoted model takes effect here)."""
        with self._lock:
            self._session_id = session_id
            if self._explicit_config is None:
                self.config = self._load_config()
            self._defaults = self._build_backends()
            router = self.router
        if router is not None and hasattr(router, "refresh"):
            try:
                router.refresh()
            except Exception:  # noqa: BLE001 - a routing failure means the defaults serve
                log.exception("routing refresh failed; serving the configured cascade")
        store = self.store
        if store is not None:
            try:
                store.record_session(session_id, {"config": self.config.describe(),
                                                  "backends": [b.name for b in self.backends]})
            except Exception:  # noqa: BLE001
                log.exception("could not record session %s", session_id)

    def telemetry_sink(self) -> StoreSink:
        """A telemetry sink writing to this generator's store (fun scores join to generations)."""
        from generator.store.telemetry_sink import StoreSink

        store = self.store
        if store is None:
            raise GeneratorError("this LevelGenerator records nothing (store=False); give it a store for telemetry")
        return StoreSink(store)

    def close(self) -> None:
        router = self.router
        if router is not None and hasattr(router, "close"):
            try:
                router.close()  # finish background shadow answers before the store closes
            except Exception:  # noqa: BLE001
                log.exception("closing the router failed")
        with self._lock:
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None
                self._owns_store = False

    def __enter__(self) -> LevelGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel:
        """The engine's ``LevelSource`` entry point."""
        return self.generate(spec, seed=seed)

    def generate(self, spec: LevelSpec, *, seed: int | None = None) -> GeneratedLevel:
        """A valid level for ``spec`` within the deadline; every attempt is recorded."""
        if seed is None:
            seed = secrets.randbits(31)
        cfg = self.config
        t_start = time.monotonic()
        deadline = t_start + cfg.deadline_s
        request_id = uuid.uuid4().hex
        records: list[CallRecord] = []
        feedback_log: list[str] = []
        tried: list[str] = []

        for backend in self._cascade():
            tried.append(backend.name)
            feedback: str | None = None
            for attempt in range(1, cfg.max_attempts + 1):
                budget = deadline - time.monotonic() - cfg.procedural_reserve_s
                if budget <= 0:
                    log.info("request %s: deadline near, skipping to %s", request_id, self._fallback.name)
                    break
                req = BackendRequest(spec=spec, seed=seed, feedback=feedback, attempt=attempt,
                                     deadline=time.monotonic() + budget)
                rec, level, report_feedback, timed_out = self._attempt(backend, req, budget, request_id)
                records.append(rec)
                if level is not None:
                    return self._serve(rec, level, records, t_start, request_id, seed, tried, feedback_log)
                if report_feedback:
                    feedback_log.append(report_feedback)
                    feedback = report_feedback
                if timed_out or _gives_up(rec):
                    break  # a hung or unavailable backend gets no more tries

        tried.append(self._fallback.name)
        feedback = None
        for attempt in range(1, cfg.max_attempts + 1):
            req = BackendRequest(spec=spec, seed=seed, feedback=feedback, attempt=attempt, deadline=deadline)
            rec, level, report_feedback, _ = self._attempt(self._fallback, req, None, request_id)
            records.append(rec)
            if level is not None:
                return self._serve(rec, level, records, t_start, request_id, seed, tried, feedback_log)
            feedback = report_feedback
        self._record(records)
        raise GeneratorError(
            f"no valid level for spec {spec.to_json().decode()} seed {seed}: even the "
            f"{self._fallback.name} fallback failed {cfg.max_attempts} times (last: "
            f"{records[-1].error or records[-1].failures[:1]}); this is a bug, please report it"
        )

    # ------------------------------------------------------------------ internals

    def _cascade(self) -> list[Backend]:
        with self._lock:
            defaults, router = list(self._defaults), self.router
        if router is None:
            return defaults
        try:
            # The router sees the fallback too: offline it is the only "teacher", and a
            # student must still be shadowed against it.  Plain procedural entries it
            # returns are dropped below (the fallback is appended at the end anyway).
            chosen = _call_router(router, self.site, [*defaults, self._fallback])
        except Exception:  # noqa: BLE001 - routing failure means the defaults serve
            log.exception("router failed for %s; using the configured cascade", self.site)
            return defaults
        return [b for b in chosen if not isinstance(b, ProceduralBackend)]

    def _attempt(
        self, backend: Backend, req: BackendRequest, timeout: float | None, request_id: str
    ) -> tuple[CallRecord, Level | None, str | None, bool]:
        """Run one backend call and judge it: (record, valid level or None, feedback, timed out)."""
        rec = CallRecord(
            site=self.site,
            backend=str(getattr(backend, "name", type(backend).__name__)),
            model_version=getattr(backend, "model_version", None),
            args=_args_of(req),
            session_id=self._session_id,
            request_id=request_id,
            attempt=req.attempt,
        )
        slot = CaptureSlot(site=self.site)
        t0 = time.perf_counter()
        out: Any = None
        timed_out = False
        tlog = None
        try:
            with observe_http() as tlog:  # requests, retries and faults the HTTP client absorbed
                out = _call_with_slot(backend, req, slot, timeout)
        except _Timeout:
            timed_out = True
            self._abandoned += 1
            rec.error = f"timeout: no answer within {timeout:.2f} s (request deadline)"
            log.warning("%s did not answer within %.2f s; abandoned", rec.backend, timeout or 0)
        except BackendDeclined as exc:
            rec.error = f"declined: {exc}"
            log.debug("%s declined: %s", rec.backend, exc)
            rec.latency_ms = (time.perf_counter() - t0) * 1000.0
            return rec, None, None, False  # valid stays unset: not the backend's failure
        except BackendError as exc:
            rec.error = f"BackendError: {exc}"
            log.info("%s failed: %s", rec.backend, exc)
        except Exception as exc:  # noqa: BLE001 - any backend bug is a failed attempt, not a crash
            rec.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s raised %s", rec.backend, rec.error)
        rec.latency_ms = (time.perf_counter() - t0) * 1000.0
        rec.transport = tlog.to_dict() if tlog is not None else None
        _merge_slot(rec, slot)
        if out is None:
            rec.valid = False
            return rec, None, None, timed_out
        if not isinstance(out, BackendOutput):
            rec.valid = False
            rec.error = f"backend {rec.backend} returned {type(out).__name__}, not BackendOutput"
            return rec, None, None, timed_out
        try:
            _merge_output(rec, out)
            report = self._validate(out.level if out.level is not None else out.raw, req.spec)
        except Exception as exc:  # noqa: BLE001 - the validator must judge, never crash the request
            rec.valid = False
            rec.error = f"validator raised {type(exc).__name__}: {exc}"
            log.exception("validator raised on %s output", rec.backend)
            return rec, None, None, timed_out
        try:
            return (*self._judge(rec, report, out), timed_out)
        except Exception as exc:  # noqa: BLE001 - any output, however broken, is a failed attempt
            rec.valid = False
            rec.error = f"could not record the verdict: {type(exc).__name__}: {exc}"
            log.exception("judging %s output failed", rec.backend)
            return rec, None, None, timed_out

    @staticmethod
    def _judge(rec: CallRecord, report: Any, out: BackendOutput) -> tuple[CallRecord, Level | None, str | None]:
        """Fill ``rec`` from the validator's report: (record, valid level or None, feedback)."""
        rec.valid = bool(report.valid)
        rec.failures = [failure_dict(f) for f in report.failures]
        level = getattr(report, "level", None) or out.level
        if level is not None:
            rec.result = level.to_dict()
        if rec.valid and level is not None:
            return rec, level, None
        rec.valid = False
        try:
            fb = report.feedback()
        except Exception:  # noqa: BLE001
            fb = "; ".join(f"{f.get('code')}: {f.get('message')}" for f in rec.failures)
        return rec, None, fb

    def _serve(
        self, rec: CallRecord, level: Level, records: list[CallRecord], t_start: float,
        request_id: str, seed: int, tried: list[str], feedback_log: list[str],
    ) -> GeneratedLevel:
        rec.served = True
        self._record(records)
        return GeneratedLevel(
            level=level,
            generation_id=rec.call_id,
            backend=rec.backend,
            model_version=rec.model_version,
            attempts=len(records),
            latency_ms=(time.monotonic() - t_start) * 1000.0,
            request_id=request_id,
            seed=seed,
            tried=tuple(tried),
            feedback=tuple(feedback_log),
        )

    def _record(self, records: list[CallRecord]) -> None:
        try:
            store = self.store
            if store is not None:
                store.record_calls(records)
        except Exception:  # noqa: BLE001 - recording must never cost the player a level
            log.exception("could not record %d attempts of request %s", len(records), records[0].request_id)


# ---------------------------------------------------------------------- helpers


def _call_router(router: Any, site: str, defaults: list[Backend]) -> list[Backend]:
    fn = router.backends_for
    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n = 2
    return list(fn(site, defaults) if n >= 2 else fn(site))


def _call_with_slot(backend: Backend, req: BackendRequest, slot: CaptureSlot, timeout: float | None) -> Any:
    """Call ``backend.generate`` with :data:`CURRENT_SLOT` set; in a worker thread when
    ``timeout`` is given, abandoning it (it is a daemon) if it does not answer in time."""

    def work() -> Any:
        token = CURRENT_SLOT.set(slot)
        try:
            return backend.generate(req)
        finally:
            CURRENT_SLOT.reset(token)

    if timeout is None:
        return work()
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = ctx.run(work)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["exc"] = exc

    thread = threading.Thread(target=run, name=f"forge-backend-{getattr(backend, 'name', '?')}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _Timeout
    if "exc" in box:
        raise box["exc"]
    return box.get("out")


def _gives_up(rec: CallRecord) -> bool:
    """An unavailable backend (auth, missing model...) is not retried; bad output is."""
    return rec.error is not None and rec.raw_output is None


def _args_of(req: BackendRequest) -> dict[str, Any]:
    args: dict[str, Any] = {"spec": req.spec.to_dict(), "seed": req.seed}
    if req.feedback:
        args["feedback"] = req.feedback
    return args


_warned_sites: set[str] = set()


def _merge_slot(rec: CallRecord, slot: CaptureSlot) -> None:
    """What the capture plugin saw during the call (messages, tokens, cost, model)."""
    if slot.calls == 0 and slot.messages is None and slot.model is None:
        return
    if slot.site and slot.site != rec.site and slot.site not in _warned_sites:
        _warned_sites.add(slot.site)
        log.warning("the capture plugin saw site %s but the facade records %s; check generator.store.callsite.LEVEL_SITE",
                    slot.site, rec.site)
    rec.model = rec.model or slot.model
    rec.messages = slot.messages if slot.messages is not None else rec.messages
    rec.output_schema = slot.output_schema
    rec.raw_output = rec.raw_output or slot.raw_output
    rec.prompt_tokens += slot.prompt_tokens
    rec.completion_tokens += slot.completion_tokens
    rec.cost_usd += slot.cost_usd
    if slot.error and rec.error is None:
        rec.error = slot.error


def _merge_output(rec: CallRecord, out: BackendOutput) -> None:
    rec.raw_output = out.raw if isinstance(out.raw, str) else repr(out.raw)
    rec.model = out.model or rec.model
    rec.model_version = out.model_version or rec.model_version
    # The backend's own counts win over the plugin's (they describe the same call).
    if out.prompt_tokens or out.completion_tokens:
        rec.prompt_tokens, rec.completion_tokens = out.prompt_tokens, out.completion_tokens
    if out.cost_usd:
        rec.cost_usd = out.cost_usd
    if out.messages is not None:
        rec.messages = out.messages
    rec.confidence = out.confidence
    if rec.result is None and out.level is None:
        try:
            rec.result = msgspec.json.decode(rec.raw_output)
        except (msgspec.DecodeError, TypeError):
            rec.result = None
