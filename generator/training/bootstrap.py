"""Bootstrap data: procedural-teacher levels made through the facade, recorded like a game's.

``python -m generator.train --bootstrap N`` uses it when the store has too
little play data to train on.  It lives in ``generator`` (not ``trainer``) so
that the trainer never imports the facade or the backends: the trainer reads
the store, whoever filled it (``tests/test_layers.py`` checks the arrows).

>>> import numpy as np
>>> spec = random_spec(np.random.default_rng(0), SpecRanges(width=(20, 20)))
>>> spec["width"], 12 <= spec["height"] <= 16
(20, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SpecRanges", "bootstrap", "count_caps", "random_spec"]


def count_caps(width: int, height: int) -> tuple[int, int]:
    """The most enemies and items a ``width`` x ``height`` level holds comfortably.

    One enemy per 50 tiles and one item per 80 (at least 6 and 4): a 64x48
    level takes the contract's 30 enemies and 20 items, a 16x12 one 6 and 4.
    Specs drawn for training and for the held-out benchmark both follow it,
    so a student sees the counts it is later asked for at every size.
    """
    area = int(width) * int(height)
    return max(6, area // 50), max(4, area // 80)


@dataclass(frozen=True)
class SpecRanges:
    """Inclusive ``(low, high)`` ranges specs are drawn from (small levels train fastest)."""

    width: tuple[int, int] = (16, 24)
    height: tuple[int, int] = (12, 16)
    enemies: tuple[int, int] = (0, 6)
    items: tuple[int, int] = (0, 4)
    #: draw the size band first (small / medium / large, ``generator.evaluate.metrics.SIZE_BANDS``) and
    #: the size inside it, so each band the ranges reach gets as many levels (uniform sizes over 16-64 x
    #: 12-48 make 2 % of them small)
    balance_bands: bool = False


def random_spec(rng: np.random.Generator, ranges: SpecRanges | None = None) -> dict[str, Any]:
    """A spec drawn uniformly from ``ranges`` (difficulty 1-10, any theme).

    Enemy and item counts are drawn up to the smaller of the range's top and
    what the drawn size holds (:func:`count_caps`).
    """
    from engine.core.content import ALL_THEMES

    ranges = ranges or SpecRanges()

    def draw(lo_hi: tuple[int, int]) -> int:
        return int(rng.integers(lo_hi[0], lo_hi[1] + 1))

    width, height = draw(ranges.width), draw(ranges.height)
    if ranges.balance_bands:
        from generator.evaluate.metrics import size_band

        reachable = _bands_within(ranges.width, ranges.height)
        band = reachable[int(rng.integers(len(reachable)))]
        while size_band({"width": width, "height": height}) != band:
            width, height = draw(ranges.width), draw(ranges.height)
    enemy_cap, item_cap = count_caps(width, height)
    return {
        "width": width,
        "height": height,
        "difficulty": int(rng.integers(1, 11)),
        "enemies": draw((ranges.enemies[0], max(ranges.enemies[0], min(ranges.enemies[1], enemy_cap)))),
        "items": draw((ranges.items[0], max(ranges.items[0], min(ranges.items[1], item_cap)))),
        "theme": str(ALL_THEMES[int(rng.integers(len(ALL_THEMES)))]),
    }


@functools.lru_cache(maxsize=32)
def _bands_within(width: tuple[int, int], height: tuple[int, int]) -> tuple[str, ...]:
    """The size bands some size inside the ranges falls in, smallest first (once per ranges, not per spec)."""
    from generator.evaluate.metrics import SIZE_BANDS, size_band

    found = {size_band({"width": w, "height": h})
             for w in range(width[0], width[1] + 1) for h in range(height[0], height[1] + 1)}
    return tuple(b for b, *_ in SIZE_BANDS if b in found)


def bootstrap(
    n: int,
    *,
    data_dir: str | Path | None = None,
    ranges: SpecRanges | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate ``n`` procedural-teacher levels through the facade (captured into the store).

    Returns ``{"levels": n}``.  The facade records each call as it would for a
    game, so the trainer sees them like any other data.
    """
    import numpy as np
    from tqdm import tqdm

    from engine.core.level import LevelSpec
    from generator.backends import ProceduralBackend
    from generator.facade import LevelGenerator

    rng = np.random.default_rng(seed)
    gen = LevelGenerator(backends=[ProceduralBackend()], data_dir=data_dir)
    made = 0
    try:
        for i in tqdm(range(n), desc="bootstrap", unit="level", disable=not progress):
            spec = LevelSpec.from_dict(random_spec(rng, ranges))
            gen.generate(spec, seed=seed * 1_000_003 + i)
            made += 1
    finally:
        gen.close()
    return {"levels": made}
