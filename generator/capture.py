"""Automatic capture of every ``by llm()`` call, in any Jac program.

:class:`CapturePlugin` is a jaclang plugin (entry point group ``jac``, name
``dungeon_forge_capture``).  With this package installed, jaclang loads it in
every process that runs Jac code, and its ``call_llm`` / ``acall_llm`` hooks
wrap byllm's: each call is recorded as a :class:`~generator.records.CallRecord`
with its call-site id (``module:qualname#schema-hash``, from the *caller
function*, never from prompt text), arguments, messages, output schema, raw
output, parsed result, model, latency, tokens, cost, error and a validity
verdict from :mod:`generator.site_validators`.

Where the record goes:

* if :data:`generator.records.CURRENT_SLOT` holds a slot, the facade is
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
validated answer unserved.  ``FORGE_LOCAL_SERVING=0`` turns the session off;
docs/routing.md has the states.

This module is imported by jaclang while jaclang itself is still loading, so
it imports neither jaclang nor byllm at module level.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import enum
import functools
import inspect
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from generator.callsite import site_id
from generator.records import CURRENT_SLOT, CallRecord, CaptureSlot
from generator.worker import BoundedWorker

log = logging.getLogger(__name__)

__all__ = [
    "CapturePlugin",
    "LocalAnswer",
    "LocalServer",
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

#: ``fn(site, args) -> result | LocalAnswer | None``: answer a call site locally, or decline with None.
LocalServer = Callable[[str, dict[str, Any]], Any]
RecordSink = Callable[[CallRecord], None]

PENDING_FILE = "capture-pending.jsonl"
#: Set to ``0`` to keep the plugin from starting a routing session (no local or shadow answers).
LOCAL_SERVING_ENV = "FORGE_LOCAL_SERVING"
_HOOKS = ("call_llm", "acall_llm")
_IMPL_MARK = "_jac_hookimpl"  # what jaclang's HookimplMarker sets; used only before jaclang is loaded

_local_server: LocalServer | None = None
_record_sink: RecordSink | None = None
_observers: contextvars.ContextVar[tuple[list[CallRecord], ...]] = contextvars.ContextVar(
    "forge_capture_observers", default=()
)
_teacher_only: contextvars.ContextVar[bool] = contextvars.ContextVar("forge_teacher_only", default=False)


# ----------------------------------------------------------------------------- public API


def set_local_server(fn: LocalServer | None) -> LocalServer | None:
    """Install ``fn(site, args) -> result | None`` as the local answerer; returns the previous one.

    For every ``by llm()`` call the plugin first asks ``fn`` with the call-site
    id and the JSON-able arguments.  A non-None answer (the JSON-able result,
    e.g. a dict for an object return type) is converted to the function's
    return type and returned to the program without calling the model; None
    (or an exception, or an answer that does not fit the return type) falls
    through to the model.  ``None`` removes the answerer.

    An answerer that also has a ``shadow_for(site) -> Shadow | None`` method
    (``generator.routing.SiteServer``) is asked, after the model answered a
    call, whether a student should answer the same call in the background: its
    answer is validated like the model's and recorded unserved (``served=False``),
    as the shadow evidence the router's state machine reads.
    """
    global _local_server
    previous, _local_server = _local_server, fn
    return previous


def get_local_server() -> LocalServer | None:
    """The installed local answerer, if any."""
    return _local_server


def set_record_sink(fn: RecordSink | None) -> RecordSink | None:
    """Send records to ``fn`` instead of the store (tests, benchmarks); returns the previous sink."""
    global _record_sink
    previous, _record_sink = _record_sink, fn
    return previous


@contextlib.contextmanager
def observe() -> Iterator[list[CallRecord]]:
    """Collect the records of the ``by llm()`` calls made inside the block.

    Observing does not change where records go (slot or store); it lets a
    caller such as the teacher backend read what its call cost.

    >>> with observe() as seen:
    ...     pass
    >>> seen
    []
    """
    seen: list[CallRecord] = []
    token = _observers.set(_observers.get() + (seen,))
    try:
        yield seen
    finally:
        _observers.reset(token)


@contextlib.contextmanager
def teacher_only() -> Iterator[None]:
    """Inside the block the local answerer is skipped: calls go to the model.

    The teacher backend uses it so that a student serving the same site can
    never answer a request that was routed to the teacher.
    """
    token = _teacher_only.set(True)
    try:
        yield
    finally:
        _teacher_only.reset(token)


def install() -> bool:
    """Make sure the plugin is active in this process (imports jaclang); True when it is.

    jaclang loads the plugin from its entry point on import; this also moves
    the plugin's hooks in front of byllm's if some other plugin registered
    later.  Idempotent and cheap after the first call.
    """
    import jaclang  # noqa: F401  (loads entry-point plugins, this one included)

    runtime = sys.modules.get("jaclang.jac0core.runtime")
    if runtime is None:
        return False
    manager = runtime.plugin_manager
    if not manager.is_registered(_CapturePlugin):
        log.warning(
            "the capture plugin is not registered (disabled via JAC_DISABLED_PLUGINS or "
            "[plugins].disabled?); by llm() calls will not be recorded"
        )
        return False
    ensure_outermost()
    return True


def ensure_outermost() -> None:
    """Put this plugin's hook implementations last, i.e. called first.

    jaclang calls hook implementations in reverse registration order and the
    first non-None answer wins, so the capture hook must sit after byllm's.
    """
    runtime = sys.modules.get("jaclang.jac0core.runtime")
    if runtime is None:
        return
    for name in _HOOKS:
        caller = getattr(runtime.plugin_manager.hook, name, None)
        impls = getattr(caller, "_hookimpls", None)
        if not impls:
            continue
        ours = [h for h in impls if h.plugin is _CapturePlugin]
        if ours and impls[-len(ours) :] != ours:
            caller._hookimpls = [h for h in impls if h.plugin is not _CapturePlugin] + ours


# ----------------------------------------------------------------------------- the plugin


def _hookimpl(fn: Callable[..., Any]) -> Callable[..., Any]:
    runtime = sys.modules.get("jaclang.jac0core.runtime")
    if runtime is not None:
        return runtime.hookimpl(fn)
    setattr(fn, _IMPL_MARK, True)
    return fn


class _CapturePlugin:
    """The jaclang plugin (exported as ``CapturePlugin``): thin hooks over the capture functions."""

    @staticmethod
    @_hookimpl
    def call_llm(model: Any, mt_run: Any) -> Any:
        return _capture_sync(model, mt_run)

    @staticmethod
    @_hookimpl
    async def acall_llm(model: Any, mt_run: Any) -> Any:
        return await _capture_async(model, mt_run)


def _downstream(hook: str, model: Any, mt_run: Any) -> Any:
    """Call the hook implementations that would have run had this plugin not existed."""
    runtime = sys.modules["jaclang.jac0core.runtime"]
    caller = getattr(runtime.plugin_manager.hook, hook)
    impls = caller.get_hookimpls()
    mine = max((i for i, h in enumerate(impls) if h.plugin is _CapturePlugin), default=len(impls))
    kwargs = {"model": model, "mt_run": mt_run}
    for hi in reversed(impls[:mine]):
        result = caller._call_impl(hi, kwargs)
        if result is not None:
            return result
    return None


def _capture_sync(model: Any, mt_run: Any) -> Any:
    call = _begin(model, mt_run)
    if call is not None and call.answer is not _NO_ANSWER:
        return call.answer
    meter_token = _meter.set(_Usage()) if call is not None else None
    start = time.perf_counter()
    try:
        result = _downstream("call_llm", model, mt_run)
    except BaseException as exc:
        _finish(call, mt_run, None, exc, start, meter_token)
        raise
    _finish(call, mt_run, result, None, start, meter_token)
    return result


async def _capture_async(model: Any, mt_run: Any) -> Any:
    call = _begin(model, mt_run)
    if call is not None and call.answer is not _NO_ANSWER:
        return call.answer
    meter_token = _meter.set(_Usage()) if call is not None else None
    start = time.perf_counter()
    try:
        result = _downstream("acall_llm", model, mt_run)
        if inspect.isawaitable(result):
            result = await result
    except BaseException as exc:
        _finish(call, mt_run, None, exc, start, meter_token)
        raise
    _finish(call, mt_run, result, None, start, meter_token)
    return result


# ----------------------------------------------------------------------------- one call


_NO_ANSWER = object()


@dataclasses.dataclass
class _Call:
    site: str
    args: dict[str, Any]
    schema: dict[str, Any] | None
    model: str
    backend: str
    resp_type: Any = None
    answer: Any = _NO_ANSWER


def _begin(model: Any, mt_run: Any) -> _Call | None:
    """Describe the call and ask the local answerer; None when capture itself failed."""
    _ensure_session()
    try:
        _ensure_metered()
        caller = mt_run.mtir.caller
        schema = _output_schema(caller, mt_run)
        module, qualname = _caller_names(caller)
        model_name = str(getattr(model, "model_name", "") or type(model).__name__)
        call = _Call(
            site=site_id(module, qualname, schema),
            args=_named_args(caller, mt_run.mtir.args),
            schema=schema,
            model=model_name,
            backend="mock" if _is_mock(model) else "llm",
            resp_type=getattr(mt_run, "resp_type", None),
        )
    except Exception:
        log.warning("capture: could not describe a by llm() call; it runs unrecorded", exc_info=True)
        return None
    if _local_server is not None and not _teacher_only.get():
        _ask_local(call, mt_run)
    return call


def _ask_local(call: _Call, mt_run: Any) -> None:
    start = time.perf_counter()
    answer: Any = None
    local: LocalAnswer | None = None
    try:
        answer = _local_server(call.site, call.args)  # type: ignore[misc]
        local = _as_local_answer(answer)
        if local is None:
            if isinstance(answer, LocalAnswer) and answer.model_version:
                _record_unusable(call, answer, start, "V0.no_answer", NO_ANSWER)
            return
        value = _to_program_value(local.result, getattr(mt_run, "resp_type", None))
    except Exception as exc:
        log.warning("capture: the local server failed on %s; asking the model instead", call.site, exc_info=True)
        if local is not None and local.model_version:
            _record_unusable(call, local, start, "V0.unparsable", _misfit(exc))
        return
    call.answer = value
    raw = local.raw if local.raw is not None else _dumps(local.result)
    rec = _record(call, raw=raw, result=to_jsonable(local.result), error=None, start=start)
    rec.backend = "student"
    rec.model = local.model or _local_model_name()
    rec.model_version = local.model_version
    rec.confidence = local.confidence
    rec.served = True
    _emit(rec, None)


def _record_unusable(call: _Call, local: LocalAnswer, start: float, code: str, message: str) -> None:
    """Record a versioned student answer the program could not use (unserved, invalid).

    The model answers the call instead; this record is what lets the router's
    live evidence see a serving student that keeps failing, and roll it back.
    """
    try:
        rec = _record(call, raw=local.raw, result=None, error=None, start=start)
        rec.valid, rec.failures = False, _v0(code, message)
        rec.result = None if local.result is None else to_jsonable(local.result)
        rec.backend, rec.model, rec.model_version = "student", local.model or _local_model_name(), local.model_version
        rec.confidence, rec.served = local.confidence, False
        _store_record(rec)  # not the call's own record: never into a facade's slot
    except Exception:
        log.warning("capture: recording a failed student answer at %s failed", call.site, exc_info=True)


@dataclasses.dataclass
class LocalAnswer:
    """What a local server may return instead of a bare result, to be recorded with it.

    A bare JSON-able value is the same as ``LocalAnswer(result=value)``.  Any
    object with a ``result`` attribute (e.g. a student's output with ``text``
    and ``mean_logprob``) is read the same way; ``result=None`` declines.
    A declined or unusable (not fitting the return type) answer that names a
    ``model_version`` is a student's failed attempt: it is recorded unserved
    and invalid, and the model answers.
    """

    result: Any
    raw: str | None = None
    confidence: float | None = None
    model: str | None = None
    model_version: str | None = None


def _as_local_answer(answer: Any) -> LocalAnswer | None:
    if answer is None:
        return None
    if isinstance(answer, LocalAnswer):
        return answer if answer.result is not None else None
    if not isinstance(answer, (dict, list, str, int, float, bool)) and hasattr(answer, "result"):
        result = getattr(answer, "result")
        if result is None:
            return None
        confidence = getattr(answer, "confidence", None)
        if confidence is None:
            confidence = getattr(answer, "mean_logprob", None)
        return LocalAnswer(
            result=result,
            raw=getattr(answer, "text", None),
            confidence=None if confidence is None else float(confidence),
            model=getattr(answer, "model", None),
            model_version=getattr(answer, "model_version", None),
        )
    return LocalAnswer(result=answer)


def _finish(
    call: _Call | None,
    mt_run: Any,
    result: Any,
    exc: BaseException | None,
    start: float,
    meter_token: contextvars.Token[_Usage | None] | None,
) -> None:
    usage = _meter.get()
    if meter_token is not None:
        _meter.reset(meter_token)
    if call is None:
        return
    streamed = inspect.isgenerator(result) or inspect.isasyncgen(result)
    try:
        json_result = None if (exc is not None or streamed) else to_jsonable(result)
        raw = None if streamed else _raw_output(mt_run, json_result, exc)
        rec = _record(call, raw=raw, result=json_result, error=exc, start=start)
        if usage is not None:
            rec.prompt_tokens, rec.completion_tokens = usage.prompt, usage.completion
            rec.cost_usd = _cost(call, usage)
        rec.messages = _messages(mt_run)
        rec.served = exc is None
        _emit(rec, usage)
    except Exception:
        log.warning("capture: recording a call at %s failed; the program is unaffected", call.site, exc_info=True)
    if exc is None and not streamed:
        _shadow_later(call)


def _record(call: _Call, *, raw: str | None, result: Any, error: BaseException | None, start: float) -> CallRecord:
    valid: bool | None = None
    failures: list[dict[str, Any]] = []
    if error is None and result is not None:
        valid, failures = _judge(call, result)
    elif error is not None and type(error).__name__ == "OutputConversionError":
        valid = False
        failures = [{"gate": "V0", "code": "V0.unparsable", "message": _scrub(str(error))[:500], "where": "$"}]
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
        error=None if error is None else f"{type(error).__name__}: {_scrub(str(error))}"[:2000],
    )


def _judge(call: _Call, result: Any) -> tuple[bool | None, list[dict[str, Any]]]:
    try:
        from generator.site_validators import judge

        return judge(call.site, result, call.schema)
    except Exception:
        log.warning("capture: judging a result of %s failed; stored unjudged", call.site, exc_info=True)
        return None, []


def _emit(rec: CallRecord, usage: _Usage | None) -> None:
    for seen in _observers.get():
        seen.append(rec)
    slot = CURRENT_SLOT.get()
    if slot is not None:
        _fill_slot(slot, rec)
        return
    sink = _record_sink or _default_sink
    try:
        sink(rec)
    except Exception:
        log.warning("capture: the record sink failed for %s; record dropped", rec.site, exc_info=True)


def _store_record(rec: CallRecord) -> None:
    """Send a record made off the program's path (a shadow answer) straight to the sink."""
    sink = _record_sink or _default_sink
    try:
        sink(rec)
    except Exception:
        log.warning("capture: the record sink failed for %s; record dropped", rec.site, exc_info=True)


def _fill_slot(slot: CaptureSlot, rec: CallRecord) -> None:
    slot.site = rec.site
    slot.model = rec.model
    slot.messages = rec.messages
    slot.output_schema = rec.output_schema
    slot.raw_output = rec.raw_output
    slot.prompt_tokens += rec.prompt_tokens
    slot.completion_tokens += rec.completion_tokens
    slot.cost_usd += rec.cost_usd
    slot.error = rec.error
    slot.calls += 1


# ----------------------------------------------------------------------------- shadow answers


@dataclasses.dataclass
class Shadow:
    """A student to run beside the model at a call site in state ``shadow``.

    Returned by a local server's ``shadow_for(site)``; ``answer(args)`` is
    called on the plugin's background worker and may return what a local
    server may (a bare result, a :class:`LocalAnswer`, None to give no answer).
    """

    answer: Callable[[dict[str, Any]], Any]
    model_version: str
    model: str = "student"


#: Shadow answers run here, one at a time; a call that finds two queued is not shadowed, so
#: shadowing never delays the program and at exit the interpreter waits only for those few.
_shadow_worker = BoundedWorker("forge-capture-shadow", max_backlog=2)


def drain_shadows(timeout: float | None = None) -> int:
    """Wait (up to ``timeout`` s) for background shadow answers; returns how many are still running."""
    return _shadow_worker.drain(timeout)


def _shadow_later(call: _Call) -> None:
    """After the model answered: queue the site's student on the same arguments, if the site is shadowed.

    Calls made by a facade backend (inside :func:`teacher_only`) are skipped:
    the facade shadows its own sites.
    """
    shadow_for = getattr(_local_server, "shadow_for", None)
    if shadow_for is None or _teacher_only.get():
        return
    try:
        shadow = shadow_for(call.site)
        if shadow is not None and not _shadow_worker.submit(functools.partial(_run_shadow, call, shadow)):
            log.debug("capture: shadow worker busy; a call at %s is not shadowed", call.site)
    except Exception:
        log.warning("capture: could not shadow a call at %s; the program is unaffected", call.site, exc_info=True)


def _run_shadow(call: _Call, shadow: Shadow) -> None:
    """Answer ``call`` with the student, judge it as the model's answer is judged, record it unserved."""
    start = time.perf_counter()
    rec = CallRecord(
        site=call.site, backend="student", model=shadow.model, model_version=shadow.model_version,
        args=call.args, output_schema=call.schema, served=False,
    )
    try:
        local = _as_local_answer(shadow.answer(call.args))
        rec.valid, rec.failures = _shadow_verdict(call, local)
        if local is not None:
            rec.raw_output = local.raw if local.raw is not None else _dumps(local.result)
            rec.result = to_jsonable(local.result)
            rec.confidence = local.confidence
            rec.model = local.model or shadow.model
    except Exception as exc:  # a crashing student is an invalid answer, never the program's problem
        rec.valid = False
        rec.error = f"{type(exc).__name__}: {_scrub(str(exc))}"[:2000]
    rec.latency_ms = (time.perf_counter() - start) * 1000.0
    _store_record(rec)


def _shadow_verdict(call: _Call, local: LocalAnswer | None) -> tuple[bool | None, list[dict[str, Any]]]:
    """The validity of a student answer: no answer or one that does not fit the return type is invalid."""
    if local is None:
        return False, _v0("V0.no_answer", NO_ANSWER)
    try:
        value = _to_program_value(local.result, call.resp_type)
    except Exception as exc:
        return False, _v0("V0.unparsable", _misfit(exc))
    return _judge(call, to_jsonable(value))


NO_ANSWER = "the student gave no answer"


def _misfit(exc: BaseException) -> str:
    """Why a student's answer could not become the function's return value (scrubbed, bounded)."""
    return f"does not fit the return type: {type(exc).__name__}: {_scrub(str(exc))}"[:500]


def _v0(code: str, message: str) -> list[dict[str, Any]]:
    """A student answer's failure as a record's ``failures``: gate V0, located at the whole answer."""
    return [{"gate": "V0", "code": code, "message": message, "where": "$"}]


# ----------------------------------------------------------------------------- the routing session


_session_lock = threading.Lock()
_session_home: str | None = None  #: the FORGE_HOME the current session was started for
_session: Any = None  #: (router, server) of the session, when one started


def _ensure_session() -> None:
    """Start this process's routing session at its first ``by llm()`` call (one program run = one session).

    When the data dir holds a promoted model for a non-level call site, a
    router over its store and registry applies the state machine once and its
    server is installed (:func:`generator.routing.start_foreign_session`).  A
    data dir without such models costs a directory listing; a local server
    someone else installed is kept; ``FORGE_LOCAL_SERVING=0`` turns this off.
    Never raises.
    """
    global _session_home, _session
    home = os.environ.get("FORGE_HOME", "")
    if home == _session_home:
        return
    with _session_lock:
        if home == _session_home:
            return
        _end_session_locked()
        _session_home = home
        if os.environ.get(LOCAL_SERVING_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return
        if _local_server is not None:
            return
        try:
            _session = _start_session()
        except Exception:
            log.warning("capture: could not start local serving; the model answers every call", exc_info=True)


def _start_session() -> Any:
    from generator.callsite import LEVEL_SITE
    from generator.paths import data_dir
    from generator.registry import Registry

    root = data_dir(create=False)
    if not any(site != LEVEL_SITE for site in Registry(root / "models").sites()):
        return None
    store = _default_sink.current_store()
    if store is None:
        return None
    from generator.routing import start_foreign_session

    return start_foreign_session(store, root)


def end_session() -> None:
    """End this process's routing session: remove its local server and close its students.

    The next ``by llm()`` call starts a new session, re-reading the registry
    and applying the state machine again, as a new program run would; a
    long-running program can call this at its own session boundaries.
    """
    with _session_lock:
        _end_session_locked()


def _end_session_locked() -> None:
    global _session_home, _session
    session, _session, _session_home = _session, None, None
    if session is None:
        return
    router, server = session
    if _local_server is server:
        set_local_server(None)
    drain_shadows(30.0)
    try:
        router.close()
    except Exception:
        log.warning("capture: closing the routing session failed", exc_info=True)


# ----------------------------------------------------------------------------- describing a call


_schema_cache: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, Any] | None]] = weakref.WeakKeyDictionary()


def _output_schema(caller: Any, mt_run: Any) -> dict[str, Any] | None:
    func = getattr(caller, "__func__", caller)
    resp_type = getattr(mt_run, "resp_type", None)
    try:
        cached = _schema_cache.get(func)
    except TypeError:
        cached = None
    if cached is not None and cached[0] is resp_type:
        return cached[1]
    schema = mt_run.get_typed_output_schema()
    with contextlib.suppress(TypeError):
        _schema_cache[func] = (resp_type, schema)
    return schema


def _caller_names(caller: Any) -> tuple[str, str]:
    """(module, qualname) of the ``by llm()`` function, as byllm itself resolves them."""
    module = getattr(caller, "__module__", None) or "__main__"
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            stem = Path(main_file).stem
            for suffix in (".impl", ".cl", ".sv"):
                stem = stem.removesuffix(suffix)
            module = stem
        elif sys.argv and sys.argv[0]:
            module = Path(sys.argv[0]).stem
    return module, getattr(caller, "__qualname__", getattr(caller, "__name__", "?"))


_param_names: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def _positional_names(caller: Any) -> list[str]:
    func = getattr(caller, "__func__", caller)
    with contextlib.suppress(TypeError):
        names = _param_names.get(func)
        if names is not None:
            return names
    names = []
    with contextlib.suppress(TypeError, ValueError):
        names = [
            p.name
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if func is not caller and names[:1] == ["self"]:
            names = names[1:]  # byllm numbers a method's arguments after self
    with contextlib.suppress(TypeError):
        _param_names[func] = names
    return names


def _named_args(caller: Any, args: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names: list[str] | None = None
    for key, value in (args or {}).items():
        if isinstance(key, int):
            names = _positional_names(caller) if names is None else names
            key = names[key] if key < len(names) else f"arg{key}"
        out[str(key)] = to_jsonable(value)
    return out


def _is_mock(model: Any) -> bool:
    if getattr(model, "model_name", None) == "mockllm":
        return True
    return any(cls.__name__ == "MockLLM" for cls in type(model).__mro__)


def _local_model_name() -> str:
    fn = _local_server
    return str(getattr(fn, "model_name", None) or getattr(fn, "__qualname__", None) or "local")


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-able copy of a ``by llm()`` argument or result.

    Jac objects (dataclasses) become dicts of their fields, enums their value,
    msgspec/pydantic models their builtins; anything else its ``str``.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class P:
    ...     x: int
    ...     tags: tuple[str, ...]
    >>> to_jsonable(P(1, ("a",)))
    {'x': 1, 'tags': ['a']}
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _depth > 32:
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name, None), _depth + 1)
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, _depth + 1) for v in value]
    if hasattr(value, "__struct_fields__"):
        import msgspec

        return msgspec.to_builtins(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        with contextlib.suppress(Exception):
            return to_jsonable(dump(), _depth + 1)
    return str(value)


def _to_program_value(answer: Any, resp_type: Any) -> Any:
    """Turn a JSON-able local answer into what the ``by llm()`` function returns."""
    if resp_type is None or resp_type is str:
        return answer if isinstance(answer, str) else _dumps(answer)
    if isinstance(resp_type, type) and isinstance(answer, resp_type):
        return answer
    if isinstance(answer, str):
        answer = json.loads(answer)
    from byllm.schema import json_to_instance

    return json_to_instance(answer, resp_type)


def _raw_output(mt_run: Any, json_result: Any, exc: BaseException | None) -> str | None:
    """The model's last text answer; the parsed result as JSON when the model gave no text (mocks)."""
    if exc is not None:
        raw = getattr(exc, "raw_output", None)
        return str(raw) if raw else None
    for msg in reversed(list(getattr(mt_run, "messages", None) or [])):
        role = msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)
        if str(getattr(role, "value", role)) != "assistant":
            continue
        content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", None)
        if isinstance(content, str) and content.strip():
            return content
        break
    return None if json_result is None else (json_result if isinstance(json_result, str) else _dumps(json_result))


def _messages(mt_run: Any) -> list[Any] | None:
    try:
        msgs = mt_run.get_msg_list()
    except Exception:
        return None
    # MockLLM appends a placeholder string as its assistant turn: not a message.
    return [to_jsonable(m) for m in msgs if not isinstance(m, str)] or None


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _scrub(text: str) -> str:
    try:
        from generator.store.redact import scrub
    except ImportError:
        from generator.teacher_config import redact as scrub
    return scrub(text)


# ----------------------------------------------------------------------------- tokens and cost


@dataclasses.dataclass
class _Usage:
    prompt: int = 0
    completion: int = 0
    responses: int = 0  #: provider responses counted where they arrive (before parsing)

    def add(self, usage: Any) -> None:
        self.prompt += _usage_int(usage, "prompt_tokens")
        self.completion += _usage_int(usage, "completion_tokens")


_meter: contextvars.ContextVar[_Usage | None] = contextvars.ContextVar("forge_capture_usage", default=None)
_metered = False
_metered_lock = threading.Lock()


def _usage_int(usage: Any, key: str) -> int:
    if usage is None:
        return 0
    value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _ensure_metered() -> None:
    """Count tokens per call: wrap byllm's dispatch methods once (results pass through untouched).

    byllm's typed-output loop keeps no usage for non-streaming calls, so the
    plugin reads it where responses arrive while a capture is active in the
    current context: from the provider response in ``Model.model_call_no_stream``
    (so attempts whose output failed to parse still count), else from the
    ``CompletionResult`` of ``dispatch_no_streaming`` (MockLLM, custom models).
    """
    global _metered
    if _metered:
        return
    with _metered_lock:
        if _metered:
            return
        from byllm.llm import BaseLLM, MockLLM, Model

        for cls, name, where in (
            (Model, "model_call_no_stream", "response"),
            (Model, "model_call_no_stream_async", "response"),
            (BaseLLM, "dispatch_no_streaming", "result"),
            (MockLLM, "dispatch_no_streaming", "result"),
            (BaseLLM, "adispatch_no_streaming", "result"),
        ):
            original = cls.__dict__.get(name)
            if original is None or getattr(original, "_forge_metered", False):
                continue
            setattr(cls, name, _metering(original, where))
        _metered = True


def _metering(original: Callable[..., Any], where: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def ametered(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen = _responses_so_far()
            result = await original(self, *args, **kwargs)
            _count(result, where, seen)
            return result

        ametered._forge_metered = True  # type: ignore[attr-defined]
        return ametered

    @functools.wraps(original)
    def metered(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen = _responses_so_far()
        result = original(self, *args, **kwargs)
        _count(result, where, seen)
        return result

    metered._forge_metered = True  # type: ignore[attr-defined]
    return metered


def _responses_so_far() -> int:
    meter = _meter.get()
    return -1 if meter is None else meter.responses


def _count(result: Any, where: str, seen_before: int) -> None:
    meter = _meter.get()
    if meter is None:
        return
    with contextlib.suppress(Exception):
        if where == "response":
            usage = result.get("usage") if isinstance(result, dict) else getattr(result, "usage", None)
            meter.add(usage)
            meter.responses += 1
        elif meter.responses == seen_before:  # nobody counted this dispatch's response yet
            meter.add(getattr(result, "usage", None))


def _cost(call: _Call, usage: _Usage) -> float:
    if call.backend != "llm" or not (usage.prompt or usage.completion):
        return 0.0
    try:
        import litellm

        prompt_cost, completion_cost = litellm.cost_per_token(
            model=call.model, prompt_tokens=usage.prompt, completion_tokens=usage.completion
        )
        return float(prompt_cost + completion_cost)
    except Exception:  # unknown model (local server, fine-tune): no price list entry
        return 0.0


# ----------------------------------------------------------------------------- default sink


class _StoreSink:
    """Writes records to the data directory's store, or to a pending JSONL file while it cannot.

    One store is kept open, for the current ``FORGE_HOME``; when that changes
    (tests, tools switching data dirs) the old one is closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._home: str | None = None
        self._store_obj: Any = None

    def __call__(self, rec: CallRecord) -> None:
        home = os.environ.get("FORGE_HOME", "")
        with self._lock:
            store = self._store(home)
            if store is not None:
                try:
                    store.record_call(rec)
                    return
                except Exception:
                    log.warning("capture: the store refused a record; keeping it in %s", PENDING_FILE, exc_info=True)
            self._append_pending(rec)

    def current_store(self) -> Any:
        """The open store of the current ``FORGE_HOME`` (None while it cannot be opened)."""
        with self._lock:
            return self._store(os.environ.get("FORGE_HOME", ""))

    def _store(self, home: str) -> Any:
        if home == self._home:
            return self._store_obj
        self._close_current()
        self._home = home
        try:
            from generator.store import Store

            self._store_obj = Store.open(None)
        except ImportError:
            log.debug("capture: generator.store unavailable; records go to %s", PENDING_FILE)
        except Exception:
            log.warning("capture: cannot open the store; records go to %s", PENDING_FILE, exc_info=True)
        if self._store_obj is not None:
            self._drain_pending(self._store_obj)
        return self._store_obj

    @staticmethod
    def _pending_path() -> Path:
        from generator.paths import data_dir

        return data_dir() / "runs" / PENDING_FILE

    def _append_pending(self, rec: CallRecord) -> None:
        import msgspec

        line = _scrub(msgspec.json.encode(rec).decode("utf-8"))
        with self._pending_path().open("ab") as fh:
            fh.write(line.encode("utf-8") + b"\n")

    def _drain_pending(self, store: Any) -> None:
        import msgspec

        path = self._pending_path()
        if not path.exists():
            return
        try:
            pending = [
                msgspec.json.decode(line, type=CallRecord) for line in path.read_bytes().splitlines() if line.strip()
            ]
            for rec in pending:
                store.record_call(rec)  # same call_id twice is replaced, so a retried drain is harmless
            path.unlink()
            log.info("capture: moved %d pending records into the store", len(pending))
        except Exception:
            log.warning("capture: could not move %s into the store; kept", path, exc_info=True)

    def _close_current(self) -> None:
        store, self._store_obj, self._home = self._store_obj, None, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def close(self) -> None:
        with self._lock:
            self._close_current()


_default_sink = _StoreSink()
atexit.register(_default_sink.close)
atexit.register(end_session)  # runs first (last registered): students close before the store


# ----------------------------------------------------------------------------- load order


def _register_call_llm_plugins_first() -> None:
    """Register the other ``call_llm`` plugins (byllm) before this one is registered.

    jaclang registers entry-point plugins in discovery order and calls the last
    one first; loading the model-calling plugins now guarantees the capture
    hook wraps them whatever order the entry points come in.  Disabled
    plugins stay disabled; failures are left for jaclang to report.
    """
    runtime = sys.modules.get("jaclang.jac0core.runtime")
    helpers = sys.modules.get("jaclang.jac0core.helpers")
    if runtime is None:
        return
    try:
        from importlib.metadata import entry_points

        disabled = list(helpers.get_disabled_plugins()) if helpers is not None else []
        if "*" in disabled:
            return
        manager = runtime.plugin_manager
        for ep in entry_points(group="jac"):
            if ep.value.split(":")[0] == __name__:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", "unknown")
            if dist + ":*" in disabled or f"{dist}:{ep.name}" in disabled or ep.name in disabled:
                continue
            try:
                plugin = ep.load()
            except Exception:
                continue
            if manager.is_registered(plugin) or not any(hasattr(plugin, h) for h in _HOOKS):
                continue
            manager.register(plugin, name=ep.name)
            facade = getattr(helpers, "DistFacade", None)
            if facade is not None and ep.dist is not None:
                manager._plugin_distinfo.append((plugin, facade(ep.dist)))
    except Exception:
        log.warning("capture: could not order jac plugins; call install() before running Jac code", exc_info=True)


def __getattr__(name: str) -> Any:
    # jaclang's loader fetches ``CapturePlugin`` from the entry point right before
    # registering it.  Resolving the name here (not as a plain module attribute)
    # lets the model-calling plugins be registered first even when this module was
    # imported before jaclang, so the capture hook always wraps byllm's.
    if name == "CapturePlugin":
        runtime = sys.modules.get("jaclang.jac0core.runtime")
        if runtime is not None and not runtime.plugin_manager.is_registered(_CapturePlugin):
            _register_call_llm_plugins_first()
        return _CapturePlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
