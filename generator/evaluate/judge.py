"""Optional LLM judge: ``judge_level`` in ``jac/judge.jac`` scores levels on the three rated rubrics.

Runs only when a teacher key or endpoint is configured
(:func:`generator.settings.teacher_configured`); it goes through
:mod:`generator.backends.teacher` (the one module that talks to jaclang/byllm), so
its calls are captured like every other ``by llm()`` call.  The report shows
the judge's rank agreement with the automatic per-level scores, the same way
as for designer ratings.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from engine.core.content import ENEMY_KINDS, EXIT_GLYPH, ITEM_KINDS, SPAWN_GLYPH
from engine.core.level import Level, LevelSpec
from generator.errors import BackendError, GeneratorError
from generator.evaluate.rating import rating_agreement
from generator.evaluate.rubrics import RATED_RUBRICS

__all__ = ["judge_available", "judge_level", "judge_evaluation", "legend"]

log = logging.getLogger(__name__)


def judge_available() -> bool:
    """True when a teacher model can be called (an API key or an OpenAI-compatible endpoint is set)."""
    from generator.settings import teacher_configured

    return teacher_configured()


def legend() -> str:
    """What the picture's glyphs mean, from the content catalogue."""
    parts = [f"{SPAWN_GLYPH} spawn", f"{EXIT_GLYPH} exit"]
    parts += [f"{k.glyph} {k.name} (enemy, hp {k.hp}, attack {k.attack})" for k in ENEMY_KINDS.values()]
    parts += [f"{k.glyph} {k.name} (item)" for k in ITEM_KINDS.values()]
    return "; ".join(parts)


def _judge_module(teacher: Any) -> Any:
    """``jac/judge.jac`` loaded through the adapter, its ``llm`` bound to the teacher making the call."""
    from generator.backends import teacher as teacher_backend

    teacher_backend.levels_module()  # loads jaclang with the capture plugin first
    module = importlib.import_module("jac.judge")
    selector = getattr(teacher_backend, "_ModelSelector", None)
    if selector is not None and not isinstance(module.llm, selector):
        module.llm = selector(module.llm)
    return module


def judge_level(level: Level, spec: LevelSpec, *, teacher: Any = None) -> dict[str, Any]:
    """Scores ``{fun, structure, constraints: 1-5, reasons}`` for one level; raises BackendError on failure."""
    from generator.backends import teacher as teacher_backend
    from generator.capture import to_jsonable

    teacher = teacher or teacher_backend.teacher_backend_from_config()
    if teacher is None:
        raise GeneratorError("the LLM judge needs a teacher key or OPENAI_BASE_URL; it is skipped without one")
    module = _judge_module(teacher)
    result, _seen, raw = teacher._run(module.judge_level, spec.to_json().decode(), level.picture(), legend(),
                                      timeout=teacher.config.timeout_s)
    if result is None:
        raise BackendError(f"the judge answered nothing parsable: {(raw or '')[:200]!r}")
    out = to_jsonable(result)
    scores = {k: int(out[k]) for k in RATED_RUBRICS if isinstance(out.get(k), (int, float))}
    if len(scores) != len(RATED_RUBRICS) or not all(1 <= v <= 5 for v in scores.values()):
        raise BackendError(f"the judge's scores are not 1-5 for each rubric: {json.dumps(out)[:200]}")
    return {**scores, "reasons": str(out.get("reasons", ""))}


def judge_evaluation(evaluation: Any, rows: Sequence[dict[str, Any]], *, teacher: Any = None,
                     limit: int = 60) -> dict[str, Mapping[str, Any]]:
    """Judge up to ``limit`` distinct valid levels; adds ``row["judge"]`` and returns the rank agreement
    between the judge and the automatic per-level scores (``{rubric: {rho, p, n}}``)."""
    from generator.evaluate.metrics import as_level

    judged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        gid = row.get("level_id")
        if not gid or gid in seen or not row.get("valid") or len(seen) >= limit:
            continue
        seen.add(gid)
        level = as_level(row["level"])
        if level is None:
            continue
        try:
            verdict = judge_level(level, LevelSpec.from_dict(row["spec"]), teacher=teacher)
        except GeneratorError as exc:
            log.warning("judge skipped level %s: %s", gid, exc)
            continue
        row["judge"] = verdict
        judged.append({"generation_id": gid, "scores": {k: verdict[k] for k in RATED_RUBRICS}})
    return rating_agreement(rows, judged)
