"""Describing a ``by llm()`` call: its site, arguments, output schema, raw output, and the verdict on a result."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import json
import logging
import sys
import weakref
from pathlib import Path
from typing import Any

from generator.capture import byllm_api
from generator.store.redact import scrub

log = logging.getLogger(__name__)

NO_ANSWER = "the student gave no answer"
NOT_ANSWERED = object()


@dataclasses.dataclass
class Call:
    site: str
    args: dict[str, Any]
    schema: dict[str, Any] | None
    model: str
    backend: str
    resp_type: Any = None
    answer: Any = NOT_ANSWERED
    served_id: str | None = None  #: call id of the student's served record, when a student answered


def verdict(call: Call, result: Any) -> tuple[bool | None, list[dict[str, Any]]]:
    try:
        from generator.validation.sites import judge

        return judge(call.site, result, call.schema)
    except Exception:
        log.warning("capture: judging a result of %s failed; stored unjudged", call.site, exc_info=True)
        return None, []


def misfit(exc: BaseException) -> str:
    """Why a student's answer could not become the function's return value (scrubbed, bounded)."""
    return f"does not fit the return type: {type(exc).__name__}: {scrub(str(exc))}"[:500]


def v0(code: str, message: str) -> list[dict[str, Any]]:
    """A student answer's failure as a record's ``failures``: gate V0, located at the whole answer."""
    return [{"gate": "V0", "code": code, "message": message, "where": "$"}]


_schema_cache: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, Any] | None]] = weakref.WeakKeyDictionary()


def output_schema(caller: Any, mt_run: Any) -> dict[str, Any] | None:
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


def caller_names(caller: Any) -> tuple[str, str]:
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


def named_args(caller: Any, args: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names: list[str] | None = None
    for key, value in (args or {}).items():
        if isinstance(key, int):
            names = _positional_names(caller) if names is None else names
            key = names[key] if key < len(names) else f"arg{key}"
        out[str(key)] = to_jsonable(value)
    return out


def is_mock(model: Any) -> bool:
    if getattr(model, "model_name", None) == "mockllm":
        return True
    return any(cls.__name__ == "MockLLM" for cls in type(model).__mro__)


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




def to_program_value(answer: Any, resp_type: Any) -> Any:
    """Turn a JSON-able local answer into what the ``by llm()`` function returns."""
    if resp_type is None or resp_type is str:
        return answer if isinstance(answer, str) else dumps(answer)
    if isinstance(resp_type, type) and isinstance(answer, resp_type):
        return answer
    if isinstance(answer, str):
        answer = json.loads(answer)
    return byllm_api.json_to_instance(answer, resp_type)


def raw_output(mt_run: Any, json_result: Any, exc: BaseException | None) -> str | None:
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
    return None if json_result is None else (json_result if isinstance(json_result, str) else dumps(json_result))


def get_messages(mt_run: Any) -> list[Any] | None:
    try:
        msgs = mt_run.get_msg_list()
    except Exception:
        return None
    # MockLLM appends a placeholder string as its assistant turn: not a message.
    return [to_jsonable(m) for m in msgs if not isinstance(m, str)] or None


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))

