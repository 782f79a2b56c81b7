"""Likeness metrics: pattern JSD, layout distances, size bands and the Markov count baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.core.level import LevelSpec
from generator.local.controls import level_char_grid
from generator.backends.procedural import generate_procedural
from generator.evaluate.structure import layout_stats
from generator.evaluate.metrics import TileMarkov, pattern_jsd, size_band, structure_distances


def _levels(theme: str, n: int, seed: int, w: int = 24, h: int = 16) -> tuple[list[dict], list[dict]]:
    specs = [{"width": w, "height": h, "difficulty": 3, "enemies": 2, "items": 1, "theme": theme} for _ in range(n)]
    return specs, [generate_procedural(LevelSpec.from_dict(s), seed=seed + i).to_dict() for i, s in enumerate(specs)]


def _noise(level: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = [list(r) for r in level["rows"]]
    things = {(t["x"], t["y"]) for t in (level["spawn"], level["exit"], *level["enemies"], *level["items"])}
    for y in range(1, len(rows) - 1):
        for x in range(1, len(rows[0]) - 1):
            rows[y][x] = "#" if rng.random() < 0.3 and (x, y) not in things else "."
    return {**level, "rows": ["".join(r) for r in rows]}


def test_pattern_jsd_separates_the_teachers_style_from_noise_and_from_another_style():
    _, crypt_a = _levels("crypt", 12, 0)
    _, crypt_b = _levels("crypt", 12, 100)
    _, cave = _levels("cave", 12, 0)
    same = pattern_jsd(crypt_a, crypt_b)
    assert pattern_jsd(crypt_a, crypt_a) == 0.0
    assert same < pattern_jsd(crypt_a, cave) < pattern_jsd(crypt_a, [_noise(lv, i) for i, lv in enumerate(crypt_a)])
    assert pattern_jsd([], crypt_a) is None


def test_structure_distances_are_in_teacher_spreads():
    _, a = _levels("crypt", 15, 0)
    _, b = _levels("crypt", 15, 50)
    _, cave = _levels("cave", 15, 0)
    sa, sb, sc = ([layout_stats(x) for x in ls] for ls in (a, b, cave))
    assert structure_distances(sa, sa)["mean_w1"] == 0.0
    near, far = structure_distances(sb, sa), structure_distances(sc, sa)
    assert near["mean_w1"] < far["mean_w1"]
    assert far["teacher_mean"]["rooms"] == pytest.approx(np.mean([s["rooms"] for s in sa]))
    assert all(s["path"] > 0 for s in sa)  # every teacher level's exit is reachable


def test_size_bands_cover_the_spec_range():
    assert size_band({"width": 16, "height": 12}) == "small"
    assert size_band(LevelSpec(width=40, height=30, difficulty=1, enemies=0, items=0, theme="cave")) == "medium"
    assert size_band({"width": 41, "height": 12}) == "large"


def test_markov_count_model_learns_the_teachers_local_shapes():
    specs, train = _levels("crypt", 30, 0)
    _, held = _levels("crypt", 10, 500)
    model = TileMarkov.fit(level_char_grid({"spec": s}, r) for s, r in zip(specs, train))
    grids = [level_char_grid({"spec": specs[0]}, r) for r in held]
    nll = model.nll(grids)
    assert 0 < nll < 0.7 * math.log(len(model.alphabet))  # far better than a uniform guess
    assert model.nll([level_char_grid({"spec": specs[0]}, _noise(r, i)) for i, r in enumerate(held)]) > nll
    lp = model.next_logprobs("#", "#")
    assert np.exp(lp).sum() == pytest.approx(1.0)


def test_likeness_table_reports_by_band_with_the_noise_floor():
    from generator.evaluate.likeness import likeness_markdown, likeness_table

    specs = [{"width": w, "height": h, "difficulty": 2, "enemies": 1, "items": 1, "theme": "crypt"}
             for w, h in ((18, 12), (20, 14), (36, 24), (30, 28), (60, 40), (50, 44))]
    teacher = [generate_procedural(LevelSpec.from_dict(s), seed=i).to_dict() for i, s in enumerate(specs)]
    again = [generate_procedural(LevelSpec.from_dict(s), seed=100 + i).to_dict() for i, s in enumerate(specs)]
    noisy = [_noise(lv, i) for i, lv in enumerate(again)]
    report = likeness_table(specs, teacher, {"noisy": noisy, "broken": [None] * 6}, noise=again,
                            valid={"noisy": [True] * 6, "broken": [False] * 6})
    assert report["bands"] == {"small": 2, "medium": 2, "large": 2}
    noisy_e, floor = report["generators"]["noisy"], report["noise"]
    assert floor["pattern_jsd"] < noisy_e["pattern_jsd"] and floor["structure_w1"] < noisy_e["structure_w1"]
    assert all(math.isfinite(e["structure_w1"]) for e in noisy_e["bands"].values())
    assert report["generators"]["broken"]["pattern_jsd"] is None and report["generators"]["broken"]["valid"] == 0.0
    text = likeness_markdown(report)
    assert "Band large (2 specs)" in text and "teacher, other seeds (noise)" in text
