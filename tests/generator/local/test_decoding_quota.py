"""The quota tilt: a model that places too few things gets them spread over the level, not crowded at its end."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.content import EXIT_GLYPH, SPAWN_GLYPH
from generator.local.codec import ENEMY_GLYPHS, ITEM_GLYPHS, ROW_PAD
from generator.local.decoding import EOS, TERRAIN, LevelGrammar, masked_completion

SPEC = {"width": 40, "height": 24, "difficulty": 5, "enemies": 12, "items": 8, "theme": "crypt"}
VOCAB = [*"0123456789\n", ROW_PAD, *sorted(TERRAIN), SPAWN_GLYPH, EXIT_GLYPH, *sorted(ENEMY_GLYPHS), *sorted(ITEM_GLYPHS),
         "<eos>"]


def _shy_model(rate: float):
    """Logits of a model that writes floor and walls and offers each thing glyph at about ``rate`` per cell."""
    logits = np.full(len(VOCAB), -20.0)  # digits, newline, padding: the grammar forces them anyway
    logits[VOCAB.index(".")] = 0.0
    logits[VOCAB.index("#")] = -1.0
    logits[VOCAB.index("+")] = -4.0
    for g in (SPAWN_GLYPH, EXIT_GLYPH, *ENEMY_GLYPHS, *ITEM_GLYPHS):
        logits[VOCAB.index(g)] = np.log(rate)
    return lambda ids: logits


def _placements(quota: bool, seed: int) -> list[tuple[str, int, int, bool]]:
    # the model offers things at about a fifth of the rate the counts need
    grammar = LevelGrammar(SPEC, quota=quota)
    out = masked_completion(_shy_model(1e-3), [], token_strings=VOCAB, eos_id=len(VOCAB) - 1,
                            rng=np.random.default_rng(seed), max_new_tokens=40 * 24 * 2, grammar=grammar)
    assert out.stopped == "grammar"
    return out.placements


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shy_model_places_its_things_across_the_level_with_the_quota_tilt(seed):
    for quota in (False, True):
        placed = _placements(quota, seed)
        assert len(placed) == 2 + SPEC["enemies"] + SPEC["items"]  # the counts hold either way
        forced = sum(f for *_, f in placed) / len(placed)
        last_rows = sum(y >= SPEC["height"] - 1 - 3 for _, _, y, _ in placed) / len(placed)
        if not quota:
            # the must-place rule does the placing, in the last rows
            assert forced > 0.6 and last_rows > 0.7
        else:
            # the model's (tilted) choice places them, and they spread over the level's rows
            assert forced < 0.3 and last_rows < 0.6
            assert len({y * 10 // SPEC["height"] for _, _, y, _ in placed}) >= 5


def test_the_tilt_leaves_a_model_whose_rate_fits_alone():
    grammar = LevelGrammar(SPEC)
    fits = SPEC["enemies"] / ((SPEC["width"] - 2) * (SPEC["height"] - 2))
    for ch in grammar.forced_run():  # up to the first interior cell
        grammar.feed(ch)
    assert abs(grammar.quota_bias({"enemy": fits})["enemy"]) < 0.05
    grammar.quota_bias({"enemy": fits * 50})  # a model eager to place enemies ...
    assert grammar.quota_bias({"enemy": fits})["enemy"] < -0.3  # ... is held back from then on
