"""Hostile input never raises and never hangs: every case is a located V0/V1 failure."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.level import Level
from generator.validation import ValidationLimits, validate_batch, validate_level
from tests.fakes.hand_levels import good

HOSTILE = {
    "empty": (b"", "V0.parse", "$"),
    "whitespace": (b"  \n ", "V0.parse", "$"),
    "truncated": (json.dumps(good())[:100], "V0.parse", "$"),
    "invalid_utf8": (b'{"name": "\xff\xfe"}', "V0.parse", "$"),
    "deep_nesting": (b"[" * 100_000 + b"]" * 100_000, "V0.parse", "$"),
    "list_not_object": (b"[1, 2, 3]", "V0.schema", "$"),
    "string_not_object": ('"a level"', "V0.schema", "$"),
    "null": (b"null", "V0.schema", "$"),
    "huge_input": ("x" * 5_000_000, "V0.too_large", "$"),
    "nan_literal": (json.dumps(good()).replace('"width": 20', '"width": NaN'), "V0.parse", "$"),
    "duplicate_key": (json.dumps(good())[:-1] + ', "theme": "cave"}', "V0.duplicate_key", "$"),
    "nul_byte_outside_strings": (json.dumps(good()).encode()[:10] + b"\x00" + json.dumps(good()).encode()[10:],
                                 "V0.parse", "$"),
}


def _tile(ch):
    """The good level with row 5, column 3 replaced by ``ch``."""
    d = good()
    r = d["rows"][5]
    d["rows"][5] = r[:3] + ch + r[4:]
    return d


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text(name):
    data, code, where = HOSTILE[name]
    report = validate_level(data)
    assert not report.valid
    assert (report.failures[0].code, report.failures[0].where) == (code, where)
    assert report.level is None


def _doc(**changes):
    d = good()
    d.update(changes)
    return d


FIELD_CASES = {
    "width_string": (_doc(width="20"), "V0.schema", "$.width"),
    "width_bool": (_doc(width=True), "V0.schema", "$.width"),
    "width_float": (_doc(width=20.0), "V0.schema", "$.width"),
    "width_nan": (_doc(width=math.nan), "V0.schema", "$.width"),
    "width_huge_claim": (_doc(width=10_000, height=10_000), "V1.too_large", "$.width"),
    "width_missing": ({k: v for k, v in good().items() if k != "width"}, "V0.schema", "$.width"),
    "rows_not_list": (_doc(rows="####"), "V0.schema", "$.rows"),
    "rows_missing": ({k: v for k, v in good().items() if k != "rows"}, "V0.schema", "$.rows"),
    "row_not_string": (_doc(rows=good()["rows"][:5] + [7] + good()["rows"][6:]), "V0.schema", "$.rows[5]"),
    "too_many_rows": (_doc(rows=["#"] * 10_000), "V1.too_large", "$.rows"),
    "giant_row": (_doc(rows=["#" * 100_000] * 12), "V1.too_large", "$.rows[0]"),
    "no_rows": (_doc(rows=[]), "V1.row_count", "$.rows"),
    "spawn_string": (_doc(spawn="1,1"), "V0.schema", "$.spawn"),
    "spawn_negative": (_doc(spawn={"x": -1, "y": 1}), "V0.schema", "$.spawn.x"),
    "spawn_float": (_doc(spawn={"x": 1.5, "y": 1}), "V0.schema", "$.spawn.x"),
    "spawn_nan": (_doc(spawn={"x": math.nan, "y": 1}), "V0.schema", "$.spawn.x"),
    "spawn_y_missing": (_doc(spawn={"x": 1}), "V0.schema", "$.spawn.y"),
    "exit_huge": (_doc(exit={"x": 10**30, "y": 1}), "V3.out_of_bounds", "$.exit"),
    "enemies_null": (_doc(enemies=None), "V0.schema", "$.enemies"),
    "enemies_object": (_doc(enemies={"kind": "rat"}), "V0.schema", "$.enemies"),
    "enemy_not_object": (_doc(enemies=[5]), "V0.schema", "$.enemies[0]"),
    "enemy_kind_number": (_doc(enemies=[{"kind": 3, "x": 10, "y": 5}]), "V0.schema", "$.enemies[0].kind"),
    "enemy_negative": (_doc(enemies=[{"kind": "rat", "x": 10, "y": -5}]), "V0.schema", "$.enemies[0].y"),
    "too_many_items": (_doc(items=[{"kind": "potion", "x": 1, "y": 1}] * 5000), "V0.too_large", "$.items"),
    "theme_number": (_doc(theme=4), "V0.schema", "$.theme"),
    "name_number": (_doc(name=4), "V0.schema", "$.name"),
    "name_huge": (_doc(name="n" * 5000), "V0.schema", "$.name"),
    "tile_nul": (_tile("\x00"), "V1.unknown_tile", "(3, 5)"),
    "tile_non_ascii": (_tile("é"), "V1.unknown_tile", "(3, 5)"),
    "tile_astral": (_tile("\U0001f409"), "V1.unknown_tile", "(3, 5)"),
    "tile_unknown_letter": (_tile("Z"), "V1.unknown_tile", "(3, 5)"),
}


@pytest.mark.parametrize("name", sorted(FIELD_CASES))
def test_hostile_fields(name):
    doc, code, where = FIELD_CASES[name]
    report = validate_level(doc)
    assert not report.valid
    assert (code, where) in [(f.code, f.where) for f in report.failures], report.failures
    assert all(f.message and f.where for f in report.failures)
    if "nan" not in name and "float" not in name:  # JSON text gives the same verdict
        assert report.codes() == validate_level(json.dumps(doc)).codes()


def test_limits_are_configurable():
    small = ValidationLimits(max_width=10, max_height=10)
    report = validate_level(good(), limits=small)
    assert ("V1.too_large", "$.width") in [(f.code, f.where) for f in report.failures]
    level = Level.from_json(json.dumps(good()))
    assert validate_level(level, limits=small).codes() == ["V1.too_large"]
    assert validate_level(json.dumps(good()), limits=ValidationLimits(max_bytes=50)).codes() == ["V0.too_large"]


def test_unusual_objects_do_not_escape():
    for thing in (None, 3, 4.5, object(), [good()], {"rows": {"a": 1}}, bytearray(b"{}"), memoryview(b"[]")):
        report = validate_level(thing)  # type: ignore[arg-type]
        assert not report.valid and report.failures[0].gate in {"V0", "V1", "V4"}


def test_renderings_that_should_not_matter_do_not():
    doc = good()
    base = validate_level(doc)
    assert base.valid
    for text in (json.dumps(doc, indent=2), json.dumps(doc, separators=(",", ":")),
                 json.dumps(dict(reversed(list(doc.items())))), json.dumps({**doc, "extra": {"a": [1]}}),
                 json.dumps(doc, ensure_ascii=True).replace('"hall"', '"h\\u0061ll"')):
        assert validate_level(text).valid, text




@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_mut=st.integers(1, 6))
def test_mutated_levels_never_raise_and_batch_agrees(seed, n_mut):
    rng = random.Random(seed)
    docs = []
    for _ in range(4):
        d = good()
        for _ in range(n_mut):
            try:
                _mutate_once(d, rng)
            except (IndexError, KeyError, TypeError, AttributeError):
                pass  # an earlier mutation broke the shape this one needed
        docs.append(d)
    texts = []
    for d in docs:
        text = json.dumps(d)
        if rng.random() < 0.3:
            text = text[: rng.randrange(len(text))]
        texts.append(text)
    singles = [validate_level(t) for t in texts + docs]
    batch = validate_batch(texts + docs)
    assert [r.codes() for r in batch] == [r.codes() for r in singles]
    for r in singles:
        assert all(f.gate in {"V0", "V1", "V2", "V3", "V4", "V5", "V6", "V7"} for f in r.failures)
        assert r.valid == (not r.failures)


def _mutate_once(d: dict, rng: random.Random) -> None:
    pick = rng.randrange(8)
    if pick == 0:
        y = rng.randrange(12)
        x = rng.randrange(20)
        row = d["rows"][y]
        d["rows"][y] = row[:x] + rng.choice("#.+x\x00é") + row[x + 1:]
    elif pick == 1:
        ent = rng.choice(d["enemies"] + d["items"] + [d["spawn"], d["exit"]])
        ent[rng.choice("xy")] = rng.choice([-1, 0, 1, 5, 11, 19, 20, 10**20, 2.5, None, "3"])
    elif pick == 2:
        d[rng.choice(list(d))] = rng.choice([None, 1, "x", [], {}, -3])
    elif pick == 3:
        d["enemies"].append({"kind": rng.choice(["rat", "bat", "??"]), "x": rng.randrange(22),
                             "y": rng.randrange(13)})
    elif pick == 4:
        d["rows"][rng.randrange(12)] += rng.choice(["", ".", "##"])
    elif pick == 5:
        d["items"].append({"kind": "potion", "x": rng.randrange(20), "y": rng.randrange(12)})
    elif pick == 6:
        d["rows"] = d["rows"][: rng.randrange(1, 13)]
    else:
        d["spawn"] = {"x": rng.randrange(20), "y": rng.randrange(12)}


def test_hostile_codes_are_catalogued():
    from generator.validation import CODES

    assert {code for _, code, _ in HOSTILE.values()} | {code for _, code, _ in FIELD_CASES.values()} <= set(CODES)


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), width=st.integers(16, 64), height=st.integers(12, 48),
       theme=st.sampled_from(["crypt", "cave", "fortress", "sewer"]), data=st.data())
def test_procedural_levels_stay_valid_under_harmless_renderings(seed, width, height, theme, data):
    from engine.core.level import LevelSpec
    from generator.backends.procedural import generate_procedural

    spec = LevelSpec(width=width, height=height, difficulty=seed % 10 + 1, enemies=seed % 31, items=seed % 21,
                     theme=theme)
    doc = generate_procedural(spec, seed).to_dict()
    rng = random.Random(seed)
    keys = list(doc)
    rng.shuffle(keys)
    shuffled = {k: doc[k] for k in keys}
    renderings = [
        json.dumps(doc),
        json.dumps(shuffled, indent=data.draw(st.integers(0, 4))),
        json.dumps({**doc, "comment": {"nested": [1, 2, {"x": None}]}, "version": 3}),
        json.dumps({**doc, "enemies": list(reversed(doc["enemies"])), "items": list(reversed(doc["items"]))}),
        json.dumps(doc, separators=(",", ":")).encode(),
        json.dumps(doc).replace(", ", ",\r\n  "),
        json.dumps({**doc, "name": "caf\u00e9 \u2603 \"quoted\":"}, ensure_ascii=data.draw(st.booleans())),
        shuffled,
    ]
    for r in renderings:
        assert validate_level(r, spec).valid, r
    assert all(rep.valid for rep in validate_batch(renderings, spec))


def test_degenerate_grids():
    import numpy as np

    empty = Level(name="e", grid=np.zeros((0, 0), np.uint8), spawn=(0, 0), exit=(0, 0), theme="cave")
    blank_rows = {**good(), "width": 0, "rows": [""] * 12}
    one = Level(name="one", grid=np.zeros((1, 1), np.uint8), spawn=(0, 0), exit=(0, 0), theme="cave")
    for item, code in ((empty, "V1.row_count"), (blank_rows, "V1.row_length"), (one, "V2.open_border")):
        assert code in validate_level(item).codes()
        assert validate_batch([item, item])[1].codes() == validate_level(item).codes()
