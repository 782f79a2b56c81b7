"""The optional LLM judge (jac/judge.jac) against byllm's MockLLM: scores, agreement, off without a key."""

from __future__ import annotations

import json

import pytest

from engine.core.level import LevelSpec
from engine.core.samples import sample_level
from tests.fakes import jac_support as support
from generator.evaluate.judge import judge_available, judge_evaluation, judge_level, legend
from generator.evaluate.rubrics import level_id


def _teacher(*answers: dict):
    from generator.backends.teacher import LLMTeacherBackend
    from generator.settings import TeacherConfig

    model = support.mock_llm(*(support.raw(json.dumps(a)) for a in answers))
    return LLMTeacherBackend(TeacherConfig(), model=model), model


def test_judge_is_off_without_a_key():
    assert not judge_available()  # the suite's fixture clears every key
    assert "skeleton" in legend() and "potion" in legend()


@pytest.mark.slow
def test_judge_scores_levels_and_reports_agreement():
    levels = [sample_level(k) for k in ("trivial", "balanced", "brutal")]
    answers = [{"fun": f, "structure": 4, "constraints": 6 - f, "reasons": "r"} for f in (1, 3, 5)]
    teacher, model = _teacher(*answers)
    rows = []
    for i, lv in enumerate(levels):
        spec = LevelSpec(width=lv.width, height=lv.height, difficulty=3, enemies=len(lv.enemies),
                         items=min(len(lv.items), 20), theme=lv.theme)
        rows.append({"level_id": level_id(lv), "valid": True, "level": lv.to_dict(), "spec": spec.to_dict(),
                     "scores": {"fun": 0.1 * (i + 1), "structure": 1.0, "constraints": 0.1 * (i + 1)}})
    agreement = judge_evaluation(None, rows, teacher=teacher)
    assert [r["judge"]["fun"] for r in rows] == [1, 3, 5]
    assert agreement["fun"]["rho"] == pytest.approx(1.0)
    assert agreement["constraints"]["rho"] == pytest.approx(-1.0)
    assert agreement["structure"]["rho"] is None  # no variation
    assert "Judge one generated dungeon level" in str(model.seen_prompts[0])


@pytest.mark.slow
def test_out_of_range_judgement_is_refused():
    from generator.errors import BackendError

    teacher, _ = _teacher({"fun": 9, "structure": 4, "constraints": 3, "reasons": "r"})
    lv = sample_level("trivial")
    spec = LevelSpec(width=lv.width, height=lv.height, difficulty=1, enemies=0, items=0, theme=lv.theme)
    with pytest.raises(BackendError, match="not 1-5"):
        judge_level(lv, spec, teacher=teacher)
