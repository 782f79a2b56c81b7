"""Gates V0-V7 on hand-built levels: the good one passes, each break gives its code and place."""

from __future__ import annotations

import copy
import json

import msgspec
import pytest

from engine.core.level import Level, LevelDoc, LevelSpec
from generator.validation import Failure, ValidationLimits, ValidationReport, validate_batch, validate_level
from tests.fakes.hand_levels import BREAKS, ROWS, SPEC, good, mutate as _mutate, put

def where_codes(report: ValidationReport) -> list[tuple[str, str]]:
    return [(f.code, f.where) for f in report.failures]


def test_good_level_passes_in_every_input_form():
    doc = good()
    level = Level.from_json(json.dumps(doc))
    for form in (doc, json.dumps(doc), json.dumps(doc).encode(), msgspec.convert(doc, LevelDoc), level):
        report = validate_level(form, SPEC)
        assert report.valid, report.failures
        assert report.failures == ()
        assert report.level == level
    assert validate_level(doc).valid  # without a spec too


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_break_gives_exactly_its_code_and_place(name):
    fn, expected = BREAKS[name]
    doc = _mutate(fn)
    report = validate_level(doc, SPEC)
    assert not report.valid
    assert where_codes(report) == expected
    # The same verdict from text, and from the batch API.
    assert where_codes(validate_level(json.dumps(doc), SPEC)) == expected
    assert where_codes(validate_batch([json.dumps(doc), doc], SPEC)[0]) == expected


def test_enemy_five_steps_away_is_fine_and_count_tolerance():
    doc = _mutate(lambda d: d["enemies"][0].update(x=6, y=2))  # Chebyshev 5
    assert validate_level(doc, SPEC).valid
    # spec 2 enemies -> allowed 1..3
    one = _mutate(lambda d: d["enemies"].pop())
    assert validate_level(one, SPEC).valid
    spec8 = LevelSpec(width=20, height=12, difficulty=3, enemies=8, items=2, theme="crypt")
    assert where_codes(validate_level(good(), spec8)) == [("V5.enemy_count", "$.enemies")]
    assert validate_level(good()).valid  # no spec, no count check


def _room(width: int, height: int, rows_fill=None) -> dict:
    rows = ["#" * width] + ["#" + "." * (width - 2) + "#" for _ in range(height - 2)] + ["#" * width]
    if rows_fill:
        rows = rows_fill(rows)
    return {"name": "room", "width": width, "height": height, "rows": rows, "spawn": {"x": 1, "y": 1},
            "exit": {"x": width - 2, "y": height - 2}, "enemies": [], "items": [], "theme": "cave"}


def test_density_low_and_high():
    report = validate_level(_room(64, 48))
    assert where_codes(report) == [("V7.density_low", "$.rows")]
    assert "7%" in report.failures[0].message

    def snake(rows):
        # Corridor along row 1 and down the right side: nearly all wall.
        rows = ["#" * 20 for _ in rows]
        rows[1] = "#" + "." * 18 + "#"
        for y in range(2, 11):
            rows[y] = "#" * 18 + ".#"
        return rows

    report = validate_level(_room(20, 12, snake))
    assert where_codes(report) == [("V7.density_high", "$.rows")]


def test_failures_are_listed_all_at_once_in_gate_order():
    doc = good()
    put(doc, 5, 0, ".")
    doc["enemies"][0].update(x=2, y=2)
    doc["items"][1].update(x=8, y=4)
    doc["theme"] = "cave"
    report = validate_level(doc, SPEC)
    assert [f.gate for f in report.failures] == ["V1", "V2", "V3", "V5"]
    assert report.counts() == {"V0": 0, "V1": 1, "V2": 1, "V3": 1, "V4": 0, "V5": 1, "V6": 0, "V7": 0}
    d = report.to_dict()
    assert d["valid"] is False and len(d["failures"]) == 4
    assert set(d["failures"][0]) >= {"gate", "code", "message", "where"}


def test_feedback_names_codes_places_and_rules():
    doc = good()
    doc["enemies"][0].update(x=2, y=2)
    text = validate_level(doc, SPEC).feedback()
    assert "V5.enemy_near_spawn" in text and "$.enemies[0]" in text and "(2, 2)" in text
    assert "more than 4 steps" in text
    assert validate_level(good(), SPEC).feedback() == "The level passed every check."


def test_repeated_tile_failures_are_capped_and_summarised():
    doc = good()
    doc["rows"] = ["." * 20 for _ in range(12)]
    report = validate_level(doc, limits=ValidationLimits(max_failures_per_code=5))
    border = [f for f in report.failures if f.code == "V2.open_border"]
    assert len(border) == 6 and "more open border tiles" in border[-1].message


def test_level_objects_with_bad_values_are_reported_not_raised():
    level = Level.from_json(json.dumps(good()))
    grid = level.grid.copy()
    grid[3, 3] = 9
    odd = Level(name="odd", grid=grid, spawn=(1, 1), exit=(18, 10), enemies=level.enemies, items=level.items,
                theme="crypt")
    assert where_codes(validate_level(odd)) == [("V1.unknown_tile", "(3, 3)")]
    neg = Level(name="neg", grid=level.grid, spawn=(-1, 1), exit=(18, 10), theme="crypt")
    assert [f.code for f in validate_level(neg).failures] == ["V0.schema"]


def test_failure_is_a_wire_struct():
    f = Failure("V3", "V3.on_wall", "on a wall", "$.enemies[0]", (3, 4))
    assert msgspec.json.decode(msgspec.json.encode(f), type=Failure) == f
    assert str(f) == "V3.on_wall $.enemies[0]: on a wall"


def test_batch_mixes_shapes_forms_and_specs():
    doc = good()
    bad = copy.deepcopy(doc)
    put(bad, 5, 0, ".")
    room = _room(30, 20)
    items = [doc, json.dumps(bad), room, Level.from_json(json.dumps(doc)), b"{", json.dumps(room)]
    reports = validate_batch(items)
    assert [r.valid for r in reports] == [True, False, True, True, False, True]
    assert [r.codes() for r in reports] == [validate_level(x).codes() for x in items]
    specs = [SPEC, SPEC, None, SPEC, None, SPEC]
    reports = validate_batch(items, specs)
    assert reports[5].codes() == ["V1.spec_width", "V1.spec_height", "V1.theme_mismatch", "V5.enemy_count"]
    with pytest.raises(ValueError, match="one per level"):
        validate_batch(items, [SPEC])


def test_every_code_in_the_tests_is_catalogued():
    from generator.validation import CODES, GATES

    seen = {code for _, expected in BREAKS.values() for code, _ in expected}
    assert seen <= set(CODES)
    assert {c.split(".")[0] for c in CODES} == set(GATES)


def test_docs_list_every_code():
    from pathlib import Path

    from generator.validation import CODES

    text = (Path(__file__).resolve().parents[3] / "docs" / "validation.md").read_text(encoding="utf-8")
    assert [c for c in CODES if f"`{c}`" not in text] == []


def test_things_drawn_into_rows_get_a_hint_and_no_knock_on_failures():
    doc = put(put(good(), 1, 1, "@"), 10, 5, "r")
    report = validate_level(doc, SPEC)
    assert where_codes(report) == [("V1.unknown_tile", "(1, 1)"), ("V1.unknown_tile", "(10, 5)")]
    assert "'@'" in report.failures[0].message and '"spawn"' in report.failures[0].message
    assert '"enemies"' in report.failures[1].message
