"""Rubrics on hand-built generations whose scores can be worked out by hand."""

from __future__ import annotations

import math

import pytest

from engine.core.level import Level, LevelSpec, Placed, rows_to_grid
from generator.evaluate.rubrics import (
    Attempt,
    Generation,
    Play,
    RubricContext,
    level_scores,
    pass_at_k,
    score_backend,
    theme_content_ok,
)
from generator.evaluate.structure import structure_features
from generator.evaluate.metrics import wilson_interval

SPEC = LevelSpec(width=16, height=12, difficulty=3, enemies=2, items=1, theme="crypt")


def room(enemies=(("skeleton", 12, 8), ("zombie", 13, 9)), items=(("scroll", 5, 5),), width=16, shift=0) -> Level:
    rows = ["#" * width] + ["#" + "." * (width - 2) + "#"] * 10 + ["#" * width]
    if shift:  # a pillar somewhere, so levels differ
        rows[5] = rows[5][:shift] + "#" + rows[5][shift + 1:]
    return Level(name="r", grid=rows_to_grid(rows), spawn=(1, 1), exit=(width - 2, 10),
                 enemies=[Placed(*e) for e in enemies], items=[Placed(*i) for i in items], theme="crypt")


def gen(level, attempts, i=0, sample=0, plays=(), spec=SPEC) -> Generation:
    return Generation(backend="b", spec_index=i, sample=sample, spec=spec, seed=i, attempts=list(attempts),
                      level=level, plays=list(plays),
                      structure=structure_features(level) if level is not None else None)


OK = Attempt(valid=True, latency_ms=10.0, prompt_tokens=100, completion_tokens=50, cost_usd=0.001)
BAD = Attempt(valid=False, failures=("V6.unreachable_enemy", "V5.enemy_count"), latency_ms=30.0)


def test_pass_at_k_matches_the_closed_form():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 10) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_structural_counts_raw_and_after_retries_and_gates():
    gens = [
        gen(room(), [OK], i=0),
        gen(room(shift=4), [BAD, OK], i=1),
        gen(room(shift=6), [BAD, BAD, BAD], i=2),
        gen(room(shift=8), [OK], i=3),
    ]
    s = score_backend(gens, names=["structural"])["structural"]
    assert s.score == pytest.approx(0.75)
    assert s.ci == pytest.approx(wilson_interval(3, 4))
    assert s.parts["raw"]["rate"] == pytest.approx(0.5)
    assert s.parts["pass_within_k_attempts"]["1"]["rate"] == pytest.approx(0.5)
    assert s.parts["pass_within_k_attempts"]["2"]["rate"] == pytest.approx(0.75)
    assert s.parts["pass_within_k_attempts"]["3"]["rate"] == pytest.approx(0.75)
    assert s.parts["first_attempt_gate_failures"] == {"V0": 0, "V1": 0, "V2": 0, "V3": 0, "V4": 0, "V5": 2, "V6": 2, "V7": 0}
    assert s.parts["all_attempts_gate_failures"]["V6"] == 4
    assert s.parts["failure_codes"]["V6.unreachable_enemy"] == 4
    assert s.parts["mean_attempts"] == pytest.approx(7 / 4)


def test_pass_at_k_over_samples_needs_several_seeds_per_spec():
    gens = [gen(room(), [OK], i=0, sample=0), gen(room(shift=3), [BAD], i=0, sample=1)]
    s = score_backend(gens, names=["structural"])["structural"]
    assert s.parts["pass_at_k_samples"] == {"1": pytest.approx(0.5), "2": pytest.approx(1.0)}


def test_theme_content_from_kinds_on_the_level():
    assert theme_content_ok(room(), "crypt")
    assert not theme_content_ok(room(enemies=(("knight", 12, 8),)), "crypt")  # fortress only
    assert not theme_content_ok(room(items=(("food", 5, 5),)), "crypt")  # not a crypt item


def test_constraints_per_field_and_joint():
    good = room()
    few_enemies = room(enemies=())  # 0 of 2 requested: outside the tolerance of 1
    wrong_kind = room(enemies=(("knight", 12, 8), ("skeleton", 13, 9)))
    gens = [gen(good, [OK], 0), gen(few_enemies, [OK], 1), gen(wrong_kind, [OK], 2), gen(None, [BAD], 3)]
    s = score_backend(gens, names=["constraints"])["constraints"]
    p = s.parts
    assert p["size"]["k"] == 3 and p["size"]["n"] == 4
    assert p["enemies"]["k"] == 2
    assert p["items"]["k"] == 3
    assert p["theme_kinds"]["k"] == 2
    assert p["theme_layout"]["k"] == 3  # open rectangular rooms: a crypt's style
    assert p["joint"]["k"] == 1
    assert s.score == pytest.approx(0.25)
    assert p["enemy_count_mae"] == pytest.approx((0 + 2 + 0) / 3)


def test_fun_averages_bots_per_level_and_counts_completion():
    plays_a = [Play("explorer", True, False, 40, 0.8), Play("speedrunner", True, False, 20, 0.6)]
    plays_b = [Play("explorer", False, True, 10, 0.2), Play("speedrunner", True, False, 15, 0.4)]
    gens = [gen(room(), [OK], 0, plays=plays_a), gen(room(shift=5), [OK], 1, plays=plays_b),
            gen(None, [BAD], 2)]
    s = score_backend(gens, names=["fun"])["fun"]
    assert s.score == pytest.approx((0.7 + 0.3) / 2)
    assert s.ci[0] < s.score < s.ci[1]
    assert s.parts["completion"]["k"] == 3 and s.parts["completion"]["n"] == 4
    assert s.parts["deaths"]["k"] == 1
    assert s.parts["viable"]["k"] == 2 and s.parts["viable"]["n"] == 3
    assert s.parts["completion_by_bot"]["explorer"]["rate"] == pytest.approx(0.5)
    assert s.parts["structure"]["critical_path"] == pytest.approx(9 + 13)


def test_diversity_zero_for_copies_and_novelty_against_training():
    same = [gen(room(), [OK], i) for i in range(3)]
    s = score_backend(same, RubricContext(training_levels=[room()]), names=["diversity"])["diversity"]
    assert s.score == 0.0
    assert s.parts["novelty"] == 0.0
    assert s.parts["near_duplicate_share"] == pytest.approx(2 / 3)
    varied = [gen(room(shift=k), [OK], k) for k in (2, 5, 8, 11)]
    v = score_backend(varied, RubricContext(training_levels=[room()]), names=["diversity"])["diversity"]
    assert v.score > 0.0
    assert v.ci[0] <= v.score <= v.ci[1]
    assert v.parts["novelty"] == 0.0  # one tile of 192 differs: still within the 5 % threshold
    assert math.isnan(v.parts["within_spec"])


def test_cost_sums_attempts_per_generation():
    gens = [gen(room(), [OK], 0), gen(room(shift=3), [BAD, OK], 1)]
    s = score_backend(gens, names=["cost"])["cost"]
    assert s.score == pytest.approx((10 + 40) / 2)
    assert s.parts["prompt_tokens"]["total"] == 200
    assert s.parts["cost_usd"]["total"] == pytest.approx(0.002)


def test_level_scores_are_in_unit_range():
    g = gen(room(), [OK], plays=[Play("explorer", True, False, 40, 0.8)])
    assert level_scores(g) == {"structure": 1.0, "constraints": 1.0, "fun": pytest.approx(0.8)}
    retried = level_scores(gen(room(), [BAD, OK]))
    assert retried["structure"] == pytest.approx(0.75 * 0.5)
    assert math.isnan(retried["fun"])


def test_rubric_scores_are_json_clean():
    import json

    gens = [gen(room(), [OK], 0)]
    out = {k: v.to_dict() for k, v in score_backend(gens).items()}
    text = json.dumps(out, allow_nan=False)
    assert set(json.loads(text)) == {"structural", "constraints", "fun", "diversity", "cost"}


def test_difficulty_played_rises_when_harder_specs_kill_more_bots():
    gens = []
    for d in range(1, 7):
        spec = LevelSpec(width=16, height=12, difficulty=d, enemies=2, items=1, theme="crypt")
        plays = [Play("explorer", k >= d // 2, k < d // 2, 20, 0.5) for k in range(3)]
        gens.append(gen(room(shift=d + 1), [OK], d, plays=plays, spec=spec))
    part = score_backend(gens, names=["constraints"])["constraints"].parts["difficulty_played"]
    assert part["n"] == 6 and part["rho"] > 0.9
    assert score_backend(gens[:3], names=["constraints"])["constraints"].parts["difficulty_played"]["rho"] is None
