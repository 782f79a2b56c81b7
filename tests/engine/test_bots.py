"""Bots finish valid levels, deterministically, on hand-made and procedural levels."""

from __future__ import annotations

import pytest

from engine.core.bots import BOTS, make_bot, play_level
from engine.core.level import LevelSpec
from engine.core.samples import sample_level


@pytest.mark.parametrize("bot", sorted(BOTS))
def test_every_bot_finishes_the_balanced_level(bot):
    for seed in range(3):
        out = play_level(sample_level("balanced"), bot, seed=seed)
        assert out.completed and not out.died, (bot, seed, out.status)
        assert out.turns >= out.fun.features["par_turns"]


def test_speedrunner_is_fastest_and_explorer_sees_most():
    outs = {b: play_level(sample_level("balanced"), b, seed=4) for b in BOTS}
    assert outs["speedrunner"].turns == min(o.turns for o in outs.values())
    assert outs["explorer"].fun.features["exploration"] == max(o.fun.features["exploration"] for o in outs.values())


def test_unknown_bot_names_the_choices():
    with pytest.raises(ValueError, match="explorer"):
        make_bot("wizard")


def test_bots_are_deterministic_for_a_seed():
    a = play_level(sample_level("balanced"), "cautious", seed=9)
    b = play_level(sample_level("balanced"), "cautious", seed=9)
    assert a.events == b.events


def test_bots_finish_most_procedural_levels():
    from generator.backends.procedural import generate_procedural

    done = total = 0
    for seed in range(6):
        spec = LevelSpec(width=40, height=24, difficulty=3, enemies=4, items=3,
                         theme=("crypt", "cave", "fortress")[seed % 3])
        level = generate_procedural(spec, seed)
        for bot in BOTS:
            total += 1
            done += play_level(level, bot, seed=seed).completed
    assert done >= 0.8 * total


@pytest.mark.parametrize("kind", ["trivial", "balanced", "brutal"])
def test_sample_levels_pass_the_validator(kind):
    from generator.validation import validate_level

    report = validate_level(sample_level(kind))
    assert report.valid, report.feedback()
