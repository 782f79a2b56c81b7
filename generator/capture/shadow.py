"""Shadow answers: a shadowed site's student answers the same call in the background, recorded unserved.

Each shadow record points at the model's answer to the same call
(``request_id`` = the model record's ``call_id``), so the router can judge
the student by agreement with the teacher, not only by validity.  A call the
student does not answer -- the worker's backlog is full, the student could
not be loaded, or the program exited before its turn -- is recorded as
*skipped* (``valid = None``, failure code :data:`~generator.answering.SKIPPED`):
counted, never judged, so a short program cannot make a student look bad.

At exit, queued shadow answers get a bounded wait (``[routing]
shadow_exit_wait_s``): :func:`finish_at_exit` runs from ``threading``'s
exit hooks, before the interpreter stops thread pools (a student loading
through transformers needs them), then the rest are recorded as skipped.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from generator import answering
from generator.answering import SKIPPED, LocalAnswer, Shadow, StudentUnavailable, as_local_answer
from generator.capture.describe import NO_ANSWER, Call, dumps, misfit, to_jsonable, to_program_value, v0, verdict
from generator.capture.sink import store_record
from generator.store.records import CallRecord
from generator.store.redact import scrub
from generator.answering.worker import BoundedWorker

log = logging.getLogger(__name__)

__all__ = ["Shadow", "drain_shadows", "preload", "submit", "finish_at_exit"]

#: Default backlog when the local server names none (``[routing] shadow_backlog`` for routing's server).
DEFAULT_BACKLOG = 32
#: Default bounded wait at exit when the local server names none (``[routing] shadow_exit_wait_s``).
DEFAULT_EXIT_WAIT_S = 30.0

#: Shadow answers run here, one at a time, off the program's path; a call that finds the backlog full is
#: recorded as skipped.  The backlog is the local server's ``shadow_backlog``.
_shadow_worker = BoundedWorker("forge-capture-shadow", max_backlog=DEFAULT_BACKLOG)
#: Set at exit: a queued shadow answer whose turn comes after this (monotonic) time is recorded as skipped.
_deadline: float | None = None


def start_session() -> None:
    """A new routing session: shadow answers run again (an earlier session's exit deadline no longer applies)."""
    global _deadline
    _deadline = None


def drain_shadows(timeout: float | None = None) -> int:
    """Wait (up to ``timeout`` s) for background shadow answers; returns how many are still running."""
    return _shadow_worker.drain(timeout)


def _server_setting(name: str, default: Any) -> Any:
    value = getattr(answering.get_local_server(), name, None)
    return default if value is None else value


def shadow_later(call: Call, teacher_call_id: str | None = None) -> None:
    """After the model answered: queue the site's student on the same arguments, if the site is shadowed.

    Calls made by a facade backend (inside :func:`~generator.answering.teacher_only`) are skipped:
    the facade shadows its own sites.
    """
    shadow_for = getattr(answering.get_local_server(), "shadow_for", None)
    if shadow_for is None or not answering.local_server_allowed():
        return
    try:
        shadow = shadow_for(call.site)
        if shadow is None:
            return
        _shadow_worker.max_backlog = max(1, int(_server_setting("shadow_backlog", DEFAULT_BACKLOG)))
        if not _shadow_worker.submit(functools.partial(_run_shadow, call, shadow, teacher_call_id)):
            log.debug("capture: shadow worker busy; a call at %s is recorded as skipped", call.site)
            _record_skipped(call, shadow, teacher_call_id, "the shadow worker's backlog was full")
    except Exception:
        log.warning("capture: could not shadow a call at %s; the program is unaffected", call.site, exc_info=True)


def submit(job: Callable[[], Any]) -> bool:
    """Queue ``job`` on the shadow worker (a spot check); False when its backlog is full."""
    return _shadow_worker.submit(job)


def preload(load: Callable[[], Any]) -> bool:
    """Run ``load`` (loading a shadowed site's student) first on the shadow worker, so answers queued
    behind it find the student ready; False when the worker is full."""
    return _shadow_worker.submit(load)


def _shadow_record(call: Call, shadow: Shadow, teacher_call_id: str | None) -> CallRecord:
    return CallRecord(
        site=call.site, backend="student", model=shadow.model, model_version=shadow.model_version,
        args=call.args, output_schema=call.schema, served=False, request_id=teacher_call_id,
    )


def _record_skipped(call: Call, shadow: Shadow, teacher_call_id: str | None, why: str) -> None:
    rec = _shadow_record(call, shadow, teacher_call_id)
    rec.valid, rec.failures = None, v0(SKIPPED, f"not answered: {why}")
    store_record(rec)


def _run_shadow(call: Call, shadow: Shadow, teacher_call_id: str | None = None) -> None:
    """Answer ``call`` with the student, judge it as the model's answer is judged, record it unserved."""
    if _deadline is not None and time.monotonic() > _deadline:
        _record_skipped(call, shadow, teacher_call_id, "the program exited before the student's turn")
        return
    start = time.perf_counter()
    rec = _shadow_record(call, shadow, teacher_call_id)
    try:
        local = as_local_answer(shadow.answer(call.args))
        rec.valid, rec.failures = _shadow_verdict(call, local)
        if local is not None:
            rec.raw_output = local.raw if local.raw is not None else dumps(local.result)
            rec.result = to_jsonable(local.result)
            rec.confidence = local.confidence
            rec.model = local.model or shadow.model
    except StudentUnavailable as exc:  # no answer at all: counted as skipped, never as a wrong answer
        rec.valid, rec.failures = None, v0(SKIPPED, f"not answered: {scrub(str(exc))}"[:500])
    except Exception as exc:  # a crashing student is an invalid answer, never the program's problem
        rec.valid = False
        rec.error = f"{type(exc).__name__}: {scrub(str(exc))}"[:2000]
    rec.latency_ms = (time.perf_counter() - start) * 1000.0
    store_record(rec)


def _shadow_verdict(call: Call, local: LocalAnswer | None) -> tuple[bool | None, list[dict[str, Any]]]:
    """The validity of a student answer: no answer or one that does not fit the return type is invalid."""
    if local is None:
        return False, v0("V0.no_answer", NO_ANSWER)
    try:
        value = to_program_value(local.result, call.resp_type)
    except Exception as exc:
        return False, v0("V0.unparsable", misfit(exc))
    return verdict(call, to_jsonable(value))


def finish_queued(wait_s: float | None = None) -> int:
    """Give queued shadow answers at most ``wait_s`` seconds (default: the server's ``shadow_exit_wait_s``);
    those whose turn comes later are recorded as skipped.  Returns how many were still running after that."""
    global _deadline
    wait = float(_server_setting("shadow_exit_wait_s", DEFAULT_EXIT_WAIT_S) if wait_s is None else wait_s)
    started = time.monotonic()
    _deadline = started + wait
    left = 0
    try:
        left = drain_shadows(wait)
        if left:  # the rest only record themselves as skipped: quick
            left = drain_shadows(5.0)
    finally:
        if not left:  # else answers queued behind one still running stay past the deadline: skipped
            _deadline = None
    waited = time.monotonic() - started
    if left:
        log.warning("capture: %d shadow answer(s) still running after %.0f s at exit", left, wait)
    elif waited >= 0.05:
        log.info("capture: queued shadow answers finished %.1f s after the program's end", waited)
    return left


_exit_hook_lock = threading.Lock()
_exit_hook: list[Callable[[], None]] = []


def finish_at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` (ending the routing session) once at interpreter exit, *before* thread pools stop.

    ``atexit`` runs after :mod:`concurrent.futures` has refused new work
    ("cannot schedule new futures after interpreter shutdown"), which broke a
    student still loading through transformers.  ``threading`` runs its own
    exit hooks earlier, latest registered first; ``concurrent.futures.thread``
    is imported first so that its hook is registered before this one and runs
    after it.  Falls back to ``atexit`` where that hook does not exist.
    """
    import atexit

    import concurrent.futures.thread  # noqa: F401  (registers its exit hook before ours)

    with _exit_hook_lock:
        if _exit_hook:
            _exit_hook[0] = hook
            return
        _exit_hook.append(hook)
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("threading has no _register_atexit")
        register(_run_exit_hook)
    except RuntimeError:  # already shutting down, or another Python: the plain exit hook still drains
        atexit.register(_run_exit_hook)


def _run_exit_hook() -> None:
    with _exit_hook_lock:
        hook = _exit_hook[0] if _exit_hook else None
    if hook is not None:
        try:
            hook()
        except Exception:  # noqa: BLE001 - exit must never fail because of the plugin
            log.warning("capture: ending the routing session at exit failed", exc_info=True)
