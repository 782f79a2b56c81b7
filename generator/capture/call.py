"""One captured call: describe it, let a local answerer answer it, record what happened."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from generator import answering
from generator.answering import LocalAnswer, as_local_answer
from generator.store.callsite import site_id
from generator.capture import metering, session
from generator.capture.describe import (
    NO_ANSWER,
    Call,
    caller_names,
    dumps,
    get_messages,
    is_mock,
    misfit,
    named_args,
    output_schema,
    raw_output,
    to_jsonable,
    to_program_value,
    v0,
    verdict,
)
from generator.capture.shadow import shadow_later, submit
from generator.capture.sink import emit, store_record
from generator.store.records import CallRecord
from generator.store.redact import scrub

log = logging.getLogger(__name__)


def begin(model: Any, mt_run: Any) -> Call | None:
    """Describe the call and ask the local answerer; None when capture itself failed."""
    session.ensure_session()
    try:
        metering.ensure_metered()
        caller = mt_run.mtir.caller
        schema = output_schema(caller, mt_run)
        module, qualname = caller_names(caller)
        model_name = str(getattr(model, "model_name", "") or type(model).__name__)
        call = Call(
            site=site_id(module, qualname, schema),
            args=named_args(caller, mt_run.mtir.args),
            schema=schema,
            model=model_name,
            backend="mock" if is_mock(model) else "llm",
            resp_type=getattr(mt_run, "resp_type", None),
        )
    except Exception:
        log.warning("capture: could not describe a by llm() call; it runs unrecorded", exc_info=True)
        return None
    server = answering.get_local_server()
    if server is not None and answering.local_server_allowed():
        _ask_local(call, mt_run, server)
    return call


def _ask_local(call: Call, mt_run: Any, server: answering.LocalServer) -> None:
    start = time.perf_counter()
    answer: Any = None
    local: LocalAnswer | None = None
    try:
        answer = server(call.site, call.args)
        local = as_local_answer(answer)
        if local is None:
            if isinstance(answer, LocalAnswer) and answer.model_version:
                _record_unusable(call, answer, start, "V0.no_answer", NO_ANSWER)
            return
        value = to_program_value(local.result, getattr(mt_run, "resp_type", None))
    except Exception as exc:
        log.warning("capture: the local server failed on %s; asking the model instead", call.site, exc_info=True)
        if local is not None and local.model_version:
            _record_unusable(call, local, start, "V0.unparsable", misfit(exc))
        return
    call.answer = value
    raw = local.raw if local.raw is not None else dumps(local.result)
    rec = _record(call, raw=raw, result=to_jsonable(local.result), error=None, start=start)
    rec.backend = "student"
    rec.model = local.model or _local_model_name()
    rec.model_version = local.model_version
    rec.confidence = local.confidence
    rec.served = True
    call.served_id = rec.call_id
    emit(rec)


def _record_unusable(call: Call, local: LocalAnswer, start: float, code: str, message: str) -> None:
    """Record a versioned student answer the program could not use (unserved, invalid).

    The model answers the call instead; this record is what lets the router's
    live evidence see a serving student that keeps failing, and roll it back.
    """
    try:
        rec = _record(call, raw=local.raw, result=None, error=None, start=start)
        rec.valid, rec.failures = False, v0(code, message)
        rec.result = None if local.result is None else to_jsonable(local.result)
        rec.backend, rec.model, rec.model_version = "student", local.model or _local_model_name(), local.model_version
        rec.confidence, rec.served = local.confidence, False
        store_record(rec)  # not the call's own record: never into a facade's slot
    except Exception:
        log.warning("capture: recording a failed student answer at %s failed", call.site, exc_info=True)



def finish(
    call: Call | None,
    mt_run: Any,
    result: Any,
    exc: BaseException | None,
    start: float,
    meter_token: contextvars.Token[metering.Usage | None] | None,
    transport: Any = None,
) -> None:
    usage = metering.current_usage.get()
    if meter_token is not None:
        metering.current_usage.reset(meter_token)
    if call is None:
        return
    streamed = inspect.isgenerator(result) or inspect.isasyncgen(result)
    rec: CallRecord | None = None
    try:
        json_result = None if (exc is not None or streamed) else to_jsonable(result)
        raw = None if streamed else raw_output(mt_run, json_result, exc)
        rec = _record(call, raw=raw, result=json_result, error=exc, start=start)
        if usage is not None:
            rec.prompt_tokens, rec.completion_tokens = usage.prompt, usage.completion
            rec.cost_usd = metering.cost(call.backend, call.model, usage)
        rec.messages = get_messages(mt_run)
        rec.served = exc is None
        rec.transport = transport.to_dict() if transport is not None else None
        emit(rec)
    except Exception:
        log.warning("capture: recording a call at %s failed; the program is unaffected", call.site, exc_info=True)
    if exc is None and not streamed:
        shadow_later(call, rec.call_id if rec is not None else None)


def _record(call: Call, *, raw: str | None, result: Any, error: BaseException | None, start: float) -> CallRecord:
    valid: bool | None = None
    failures: list[dict[str, Any]] = []
    if error is None and result is not None:
        valid, failures = verdict(call, result)
    elif error is not None and type(error).__name__ == "OutputConversionError":
        valid = False
        failures = [{"gate": "V0", "code": "V0.unparsable", "message": scrub(str(error))[:500], "where": "$"}]
    return CallRecord(
        site=call.site,
        backend=call.backend,
        model=call.model,
        args=call.args,
        output_schema=call.schema,
        raw_output=raw,  # the store masks secrets in everything it writes; so does the pending file
        result=result,
        valid=valid,
        failures=failures,
        latency_ms=(time.perf_counter() - start) * 1000.0,
        error=None if error is None else f"{type(error).__name__}: {scrub(str(error))}"[:2000],
    )


def _local_model_name() -> str:
    fn = answering.get_local_server()
    return str(getattr(fn, "model_name", None) or getattr(fn, "__qualname__", None) or "local")


_spot_rng = random.Random(0)  #: seeded, as the facade's spot checks are: the same program checks the same calls


def spot_check_later(call: Call, ask_model: Callable[[], Any]) -> None:
    """After a student served ``call``: for a share of calls (the local server's ``spot_check_rate``), ask the
    model the same call in the background and record its answer unserved, paired with the student's
    (``request_id`` = the served record's ``call_id``): the live agreement that can roll a student back.
    A busy worker skips the check."""
    rate = float(getattr(answering.get_local_server(), "spot_check_rate", 0.0) or 0.0)
    if call.served_id is None or rate <= 0 or _spot_rng.random() >= rate:
        return
    if not submit(functools.partial(_run_spot_check, call, ask_model)):
        log.debug("capture: shadow worker busy; a served call at %s is not spot-checked", call.site)


def _run_spot_check(call: Call, ask_model: Callable[[], Any]) -> None:
    import threading

    if getattr(threading, "_SHUTTING_DOWN", False):
        # The program has ended: a model call cannot start the threads it needs any more (Python >= 3.12).
        log.debug("capture: a spot check at %s is dropped: the program ended first", call.site)
        return
    token = metering.current_usage.set(metering.Usage())
    start = time.perf_counter()
    try:
        with answering.teacher_only():
            result = ask_model()
        usage = metering.current_usage.get()
        rec = _record(call, raw=None, result=to_jsonable(result), error=None, start=start)
        rec.raw_output = dumps(rec.result)
        if usage is not None:
            rec.prompt_tokens, rec.completion_tokens = usage.prompt, usage.completion
            rec.cost_usd = metering.cost(call.backend, call.model, usage)
        rec.served, rec.request_id = False, call.served_id
        store_record(rec)
    except Exception as exc:  # noqa: BLE001 - a failed check is no evidence either way
        log.info("capture: a spot check at %s failed (%s: %s); not recorded", call.site, type(exc).__name__,
                 scrub(str(exc))[:200])
    finally:
        metering.current_usage.reset(token)
