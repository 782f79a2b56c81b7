"""Per-call-site validators: is a captured ``by llm()`` result usable?

A call site can register its own validator; levels use the validator's gates
(``generator.validation.validate_level``), the adaptive-difficulty site checks
the spec ranges, and every other site is judged by its output schema (the
JSON schema byllm sent to the model).  The verdict is stored with the call, so
the trainer learns only from outputs that were good.

A validator takes the JSON-able result and returns ``(valid, failures)`` where
each failure is a dict with ``gate``, ``code``, ``message`` and ``where``:

>>> judge("demo:f#00000000", {"n": 1}, {"type": "object", "required": ["n"]})
(True, [])
>>> valid, failures = judge("demo:f#00000000", {}, {"type": "object", "required": ["n"]})
>>> valid, failures[0]["code"]
(False, 'V0.schema.required')
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from generator.store.callsite import LEVEL_SITE, SPEC_SITE, site_name

log = logging.getLogger(__name__)

Failures = list[dict[str, Any]]
Validator = Callable[[Any], tuple[bool, Failures]]

_lock = threading.Lock()
_by_site: dict[str, Validator] = {}
_by_name: dict[str, Validator] = {}  # "module:qualname" -> validator, whatever the schema hash
_schema_checkers: dict[str, Any] = {}


def failure(gate: str, code: str, message: str, where: str = "") -> dict[str, Any]:
    """One failure in the shape the store and the validator use."""
    return {"gate": gate, "code": code, "message": message, "where": where}


def register(site: str, fn: Validator, *, any_schema: bool = False) -> None:
    """Judge results of ``site`` with ``fn`` instead of the schema check.

    With ``any_schema`` the validator applies to every schema hash of the
    site's ``module:qualname`` (useful while a return type is still changing).
    """
    with _lock:
        if any_schema:
            _by_name[site_name(site)] = fn
        else:
            _by_site[site] = fn


def unregister(site: str) -> None:
    """Remove a validator registered for ``site`` (exact id and name-wide)."""
    with _lock:
        _by_site.pop(site, None)
        _by_name.pop(site_name(site), None)


def validator_for(site: str) -> Validator | None:
    """The validator that judges ``site``, or None when the schema check applies."""
    return _by_site.get(site) or _by_name.get(site_name(site))


def judge(site: str, result: Any, schema: dict[str, Any] | None) -> tuple[bool, Failures]:
    """Judge one JSON-able result: the site's validator, else schema validity."""
    fn = validator_for(site)
    if fn is not None:
        return fn(result)
    return check_schema(result, schema)


def check_schema(result: Any, schema: dict[str, Any] | None) -> tuple[bool, Failures]:
    """Schema validity (JSON Schema via ``jsonschema``); no schema means "a string"."""
    if schema is None:
        if isinstance(result, str) and result.strip():
            return True, []
        return False, [failure("V0", "V0.empty", "expected a non-empty text result", "$")]
    schema = json_schema_of(schema)
    checker = _schema_checker(schema)
    errors = sorted(checker.iter_errors(result), key=lambda e: list(e.absolute_path))
    failures = [
        failure("V0", f"V0.schema.{e.validator}", e.message[:300], e.json_path) for e in errors[:20]
    ]
    return not failures, failures


def json_schema_of(output_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema inside byllm's ``response_format`` wrapper (or the schema itself)."""
    if output_schema.get("type") == "json_schema" and isinstance(output_schema.get("json_schema"), dict):
        inner = output_schema["json_schema"].get("schema")
        if isinstance(inner, dict):
            return inner
    return output_schema


def _schema_checker(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True)
    checker = _schema_checkers.get(key)
    if checker is None:
        import jsonschema  # a dependency of litellm, which byllm needs anyway

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        checker = cls(schema)
        _schema_checkers[key] = checker
    return checker


def validate_level_result(result: Any) -> tuple[bool, Failures]:
    """The level gates V0-V7 on a Level JSON object (``design_level``'s result)."""
    try:
        from generator.validation import failure_dict, validate_level
    except ImportError:  # the validator package is optional while it is being built
        log.debug("generator.validation unavailable; judging the level by shape only")
        return _level_shape_only(result)
    report = validate_level(result)
    return bool(report.valid), [failure_dict(f) for f in report.failures]


def validate_spec_result(result: Any) -> tuple[bool, Failures]:
    """``choose_next_spec``'s result must be a LevelSpec in range."""
    from engine.core.errors import SpecError
    from engine.core.level import LevelSpec

    try:
        LevelSpec.from_dict(result)
    except SpecError as exc:
        return False, [failure("V0", "V0.spec", str(exc), "$")]
    return True, []


def _level_shape_only(result: Any) -> tuple[bool, Failures]:
    from engine.core.errors import EngineError
    from engine.core.level import Level

    try:
        Level.from_json(json.dumps(result))
    except (EngineError, TypeError, ValueError) as exc:
        return False, [failure("V0", "V0.parse", str(exc), "$")]
    return True, []


register(LEVEL_SITE, validate_level_result, any_schema=True)
register(SPEC_SITE, validate_spec_result, any_schema=True)
