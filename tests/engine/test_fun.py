"""The fun score means something: flow beats boredom and beats frustration."""

from __future__ import annotations

import pytest

from engine.core.bots import play_level
from engine.core.fun import WEIGHTS, fun_score
from engine.core.samples import sample_level


@pytest.mark.parametrize("bot", ["explorer", "speedrunner", "cautious"])
def test_balanced_level_beats_trivial_and_brutal_for_the_same_bot(bot):
    scores = {kind: play_level(sample_level(kind), bot, seed=11).fun for kind in ("trivial", "balanced", "brutal")}
    assert scores["balanced"].score > scores["trivial"].score
    assert scores["balanced"].score > scores["brutal"].score
    # and for the reasons the idea says: no challenge vs too much
    assert scores["trivial"].features["tension"] == 0.0
    assert scores["brutal"].features["deaths"] >= 1 and scores["brutal"].features["completed"] == 0.0


def test_score_is_in_range_and_keeps_its_parts():
    fun = play_level(sample_level("balanced"), "explorer", seed=2).fun
    assert 0.0 <= fun.score <= 1.0
    assert set(WEIGHTS) | {"deaths", "retries", "early_quit", "time_ratio", "par_turns"} <= set(fun.features)
    assert all(0.0 <= fun.features[k] <= 1.0 for k in WEIGHTS)


def test_quitting_early_scores_lower_than_finishing():
    level = sample_level("balanced")
    finished = play_level(level, "explorer", seed=2).fun
    quit_early = play_level(level, "explorer", seed=2, max_turns=10).fun
    assert quit_early.features["early_quit"] == 1.0
    assert quit_early.score < finished.score


def test_fun_needs_one_levels_events():
    a = play_level(sample_level("trivial"), "speedrunner", level_id="a").events
    b = play_level(sample_level("trivial"), "speedrunner", level_id="b").events
    with pytest.raises(ValueError, match="2 levels"):
        fun_score(a + b)
    with pytest.raises(ValueError, match="no LevelStart"):
        fun_score(a[1:])
    assert fun_score(a).score == fun_score(a, sample_level("trivial")).score


def test_fun_falls_when_procedural_levels_outgrow_the_bot():
    from generator.backends.procedural import generate_procedural
    from engine.core.level import LevelSpec

    def mean_fun(difficulty):
        scores = []
        for seed in range(4):
            spec = LevelSpec(width=40, height=24, difficulty=difficulty, enemies=2 + 2 * difficulty, items=3,
                             theme="crypt")
            scores.append(play_level(generate_procedural(spec, seed), "explorer", seed=seed).fun.score)
        return sum(scores) / len(scores)

    assert mean_fun(2) > mean_fun(9)
