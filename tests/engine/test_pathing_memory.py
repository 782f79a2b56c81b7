"""Distance maps do not leak native memory (found by the 10,000-request soak, docs/benchmarks.md).

``tcod.path.dijkstra2d`` (tcod 21) kept about 4 KB of native memory per call:
the procedural generator, the bots and the student's spawn/exit placement call
it per level or per turn, and a soak's RSS grew 17 MB per 1,000 requests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.level import LevelSpec
from engine.core.pathing import distance_map

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists() or sys.platform != "linux",
                                reason="reads RssAnon from /proc")


def rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


def grows_kb(fn, n: int) -> int:
    for i in range(50):
        fn(i)
    before = rss_anon_kb()
    for i in range(n):
        fn(i)
    return rss_anon_kb() - before


def test_distance_maps_do_not_leak():
    walk = np.random.default_rng(0).random((30, 40)) > 0.3
    # the old dijkstra2d path kept ~12,000 kB over 3,000 calls
    assert grows_kb(lambda i: distance_map(walk, [(1 + i % 30, 1 + i % 20)]), 3000) < 3000


def test_procedural_levels_do_not_leak():
    from generator.backends.procedural import generate_procedural

    spec = LevelSpec(width=40, height=30, difficulty=5, enemies=6, items=3, theme="cave")
    # the old path kept ~13,500 kB over 1,000 levels
    assert grows_kb(lambda i: generate_procedural(spec, i), 1000) < 4000
