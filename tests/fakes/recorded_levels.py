"""A store of recorded, valid procedural-looking 16x12 cave levels, as the trainer reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.core.level import Level, Placed
from generator.store.callsite import LEVEL_SITE
from generator.store.records import CallRecord
from generator.store import Store


def fill(home: Path, n: int = 30, seed: int = 0) -> None:
    """Record ``n`` valid level calls (random walls, seeded) in ``home/forge.db``."""
    rng = np.random.default_rng(seed)
    with Store.open(home / "forge.db") as store:
        for i in range(n):
            spec = {"width": 16, "height": 12, "difficulty": 1 + i % 10, "enemies": i % 3, "items": 1, "theme": "cave"}
            grid = np.ones((12, 16), dtype=np.uint8)
            grid[1:-1, 1:-1] = (rng.random((10, 14)) < 0.2).astype(np.uint8)
            grid[1:3, 1:3] = grid[-3:-1, -3:-1] = 0
            free = [(x, y) for y in range(1, 11) for x in range(1, 15) if grid[y, x] == 0 and x + y > 8 and (x, y) != (14, 10)]
            pick = rng.permutation(len(free))
            lv = Level(name="x", grid=grid, spawn=(1, 1), exit=(14, 10), theme="cave",
                       enemies=[Placed("rat", *free[j]) for j in pick[: spec["enemies"]]],
                       items=[Placed("potion", *free[pick[-1]])])
            store.record_call(CallRecord(site=LEVEL_SITE, backend="procedural", args={"spec": spec},
                                         result=lv.to_dict(), valid=True))
