"""Shadow answers: a shadowed site's student answers the same call in the background, recorded unserved."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from generator import answering
from generator.answering import LocalAnswer, Shadow, as_local_answer
from generator.capture.describe import NO_ANSWER, Call, dumps, misfit, to_jsonable, to_program_value, v0, verdict
from generator.capture.sink import store_record
from generator.records import CallRecord
from generator.store.redact import scrub
from generator.worker import BoundedWorker

log = logging.getLogger(__name__)

__all__ = ["Shadow", "drain_shadows"]


#: Shadow answers run here, one at a time; a call that finds two queued is not shadowed, so
#: shadowing never delays the program and at exit the interpreter waits only for those few.
_shadow_worker = BoundedWorker("forge-capture-shadow", max_backlog=2)


def drain_shadows(timeout: float | None = None) -> int:
    """Wait (up to ``timeout`` s) for background shadow answers; returns how many are still running."""
    return _shadow_worker.drain(timeout)


def shadow_later(call: Call) -> None:
    """After the model answered: queue the site's student on the same arguments, if the site is shadowed.

    Calls made by a facade backend (inside :func:`~generator.answering.teacher_only`) are skipped:
    the facade shadows its own sites.
    """
    shadow_for = getattr(answering.get_local_server(), "shadow_for", None)
    if shadow_for is None or not answering.local_server_allowed():
        return
    try:
        shadow = shadow_for(call.site)
        if shadow is not None and not _shadow_worker.submit(functools.partial(_run_shadow, call, shadow)):
            log.debug("capture: shadow worker busy; a call at %s is not shadowed", call.site)
    except Exception:
        log.warning("capture: could not shadow a call at %s; the program is unaffected", call.site, exc_info=True)


def _run_shadow(call: Call, shadow: Shadow) -> None:
    """Answer ``call`` with the student, judge it as the model's answer is judged, record it unserved."""
    start = time.perf_counter()
    rec = CallRecord(
        site=call.site, backend="student", model=shadow.model, model_version=shadow.model_version,
        args=call.args, output_schema=call.schema, served=False,
    )
    try:
        local = as_local_answer(shadow.answer(call.args))
        rec.valid, rec.failures = _shadow_verdict(call, local)
        if local is not None:
            rec.raw_output = local.raw if local.raw is not None else dumps(local.result)
            rec.result = to_jsonable(local.result)
            rec.confidence = local.confidence
            rec.model = local.model or shadow.model
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

