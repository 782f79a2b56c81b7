"""The level model contract: specs reject bad values by name, levels round-trip losslessly."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import Level, LevelDoc, LevelFormatError, LevelSpec, Placed, SpecError, Tile
from engine.core.content import ALL_THEMES, ENEMY_KINDS, ITEM_KINDS
from engine.core.level import SPEC_RANGES

GOOD_SPEC = {"width": 32, "height": 20, "difficulty": 4, "enemies": 5, "items": 3, "theme": "cave"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 15),
        ("width", 65),
        ("height", 11),
        ("height", 49),
        ("difficulty", 0),
        ("difficulty", 11),
        ("enemies", -1),
        ("enemies", 31),
        ("items", 21),
        ("width", 20.5),
        ("width", True),
    ],
)
def test_out_of_range_spec_names_field_and_range(field, value):
    bad = dict(GOOD_SPEC, **{field: value})
    with pytest.raises(SpecError) as info:
        LevelSpec(**bad)
    lo, hi = SPEC_RANGES[field]
    assert info.value.field == field
    assert f"{lo}..{hi}" in str(info.value)


def test_unknown_theme_lists_the_allowed_ones():
    with pytest.raises(SpecError) as info:
        LevelSpec(**dict(GOOD_SPEC, theme="moon"))
    assert info.value.field == "theme"
    for theme in ALL_THEMES:
        assert theme in str(info.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"width": 32}', "height"),
        (json.dumps(dict(GOOD_SPEC, height="12")), "height"),
        (json.dumps(dict(GOOD_SPEC, extra=1)), "extra"),
        (json.dumps(dict(GOOD_SPEC, items=99)), "items"),
        ("[1, 2]", "<object>"),
        ("{not json", "<json>"),
    ],
)
def test_spec_from_json_errors_are_spec_errors(text, field):
    with pytest.raises(SpecError) as info:
        LevelSpec.from_json(text)
    assert info.value.field == field


def test_spec_json_round_trip():
    spec = LevelSpec(**GOOD_SPEC)
    assert LevelSpec.from_json(spec.to_json()) == spec
    assert LevelSpec.from_dict(spec.to_dict()) == spec


def _walled(w: int, h: int) -> np.ndarray:
    grid = np.full((h, w), Tile.WALL, dtype=np.uint8)
    grid[1:-1, 1:-1] = Tile.FLOOR
    return grid


def test_grid_is_indexed_y_then_x():
    grid = _walled(20, 12)
    grid[3, 7] = Tile.DOOR  # y=3, x=7
    level = Level(name="t", grid=grid, spawn=(1, 1), exit=(18, 10), theme="crypt")
    doc = level.to_doc()
    assert doc.rows[3][7] == "+"
    assert (doc.width, doc.height) == (20, 12)
    assert level.grid.dtype == np.uint8 and not level.grid.flags.writeable


def test_picture_shows_terrain_and_things():
    level = Level(
        name="pic",
        grid=_walled(16, 12),
        spawn=(1, 1),
        exit=(14, 10),
        enemies=[Placed("rat", 8, 8)],
        items=[Placed("potion", 3, 3)],
        theme="crypt",
    )
    lines = level.picture().splitlines()
    assert len(lines) == 12 and all(len(line) == 16 for line in lines)
    assert lines[1][1] == "@" and lines[10][14] == ">"
    assert lines[8][8] == ENEMY_KINDS["rat"].glyph and lines[3][3] == ITEM_KINDS["potion"].glyph
    assert str(level).startswith("pic (crypt, 16x12)")


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        (["####", "#..", "####"], "$.rows[1]"),
        (["####", "#@.#", "####"], "$.rows[1]"),
        (["####", "#é.#", "####"], "$.rows[1]"),
        ([], "$.rows"),
    ],
)
def test_bad_rows_raise_located_format_errors(rows, where):
    doc = {
        "name": "bad", "width": 4, "height": len(rows), "rows": rows,
        "spawn": {"x": 1, "y": 1}, "exit": {"x": 2, "y": 1},
        "enemies": [], "items": [], "theme": "cave",
    }
    with pytest.raises(LevelFormatError) as info:
        Level.from_json(json.dumps(doc))
    assert info.value.where == where


def test_wrong_type_is_a_located_format_error():
    with pytest.raises(LevelFormatError) as info:
        Level.from_json(b'{"name": "x", "width": "wide"}')
    assert info.value.where == "$.width"


# ----------------------------------------------------------------- properties

positions = st.tuples(st.integers(0, 63), st.integers(0, 47))


@st.composite
def levels(draw):
    w = draw(st.integers(16, 64))
    h = draw(st.integers(12, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = rng.choice(np.array([0, 1, 2], dtype=np.uint8), size=(h, w), p=[0.6, 0.35, 0.05])
    point = st.tuples(st.integers(0, w - 1), st.integers(0, h - 1))
    placed = st.builds(
        Placed,
        kind=st.sampled_from(sorted(ENEMY_KINDS) + sorted(ITEM_KINDS)),
        x=st.integers(0, w - 1),
        y=st.integers(0, h - 1),
    )
    return Level(
        name=draw(st.text(min_size=0, max_size=20)),
        grid=grid,
        spawn=draw(point),
        exit=draw(point),
        enemies=draw(st.lists(placed, max_size=30)),
        items=draw(st.lists(placed, max_size=20)),
        theme=draw(st.sampled_from(ALL_THEMES)),
    )


@settings(max_examples=300, deadline=None)
@given(levels())
def test_level_json_round_trip_is_lossless(level):
    again = Level.from_json(level.to_json())
    assert again == level
    assert np.array_equal(again.grid, level.grid)
    # and through plain Python objects (what an LLM or a JSONL file carries)
    assert Level.from_doc(msgspec.convert(level.to_dict(), LevelDoc)) == level


@settings(max_examples=200, deadline=None)
@given(levels())
def test_grid_round_trip_through_rows(level):
    doc = level.to_doc()
    assert len(doc.rows) == level.height
    assert {len(r) for r in doc.rows} == {level.width}
    assert np.array_equal(Level.from_doc(doc).grid, level.grid)
