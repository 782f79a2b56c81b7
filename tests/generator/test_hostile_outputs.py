"""Broken backend output never costs the player a level (issue 15, items 1 and 2).

A level that parses but holds a tile outside the alphabet (``@``, a NUL, a
non-ASCII glyph) used to crash the facade while recording it and the
validator CLI while drawing it.  Whatever a backend answers is a failed
attempt; the player gets a valid level; every attempt reaches the store.
"""

from __future__ import annotations

import json

import pytest

from engine.core.level import LevelSpec
from generator.backends import BackendOutput
from generator.store.callsite import LEVEL_SITE
from generator.facade import LevelGenerator
from generator.backends.procedural import generate_procedural as procedural_generate
from generator.store import Store
from generator.validate import main as validate_main
from generator.validation import validate_level

SPEC = LevelSpec(width=20, height=14, difficulty=2, enemies=1, items=1, theme="crypt")


def valid_doc(spec: LevelSpec = SPEC) -> dict:
    doc = procedural_generate(spec, seed=3).to_dict()
    assert validate_level(json.dumps(doc), spec).valid
    return doc


def with_tile(doc: dict, glyph: str, x: int = 3, y: int = 2) -> str:
    doc = json.loads(json.dumps(doc))
    row = doc["rows"][y]
    doc["rows"][y] = row[:x] + glyph + row[x + 1:]
    return json.dumps(doc)


#: Tiles a teacher has been seen to draw, or an attacker can send.
BAD_TILES = ["@", "\x00", "é", "\u2588", "\U0001F600", "\ufffd", "?"]


class Teacher:
    name = "llm"
    model_version = None

    def __init__(self, raw: str):
        self.raw = raw
        self.calls = 0

    def generate(self, request):
        self.calls += 1
        return BackendOutput(raw=self.raw, model="teacher-x")


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "forge.db") as s:
        yield s


@pytest.mark.parametrize("glyph", BAD_TILES, ids=repr)
def test_an_unknown_tile_is_a_failed_attempt_and_the_player_still_gets_a_level(store, glyph):
    teacher = Teacher(with_tile(valid_doc(), glyph))
    gen = LevelGenerator([teacher], store=store, max_attempts=2)
    got = gen.generate(SPEC, seed=11)
    assert got.backend == "procedural" and teacher.calls == 2
    assert validate_level(got.level.to_json(), SPEC).valid
    recs = [c.record for c in store.iter_calls(LEVEL_SITE)]
    assert [(r.backend, r.valid, r.served) for r in recs] == [
        ("llm", False, False), ("llm", False, False), ("procedural", True, True)]
    assert all(r.request_id == got.request_id for r in recs)
    assert any(f["code"] == "V1.unknown_tile" for f in recs[0].failures)
    assert recs[0].raw_output == teacher.raw  # what the teacher said is kept verbatim


def test_unknown_tiles_survive_serialising_the_validators_level():
    report = validate_level(with_tile(valid_doc(), "@"), SPEC)
    assert not report.valid and report.level is not None
    rows = report.level.to_dict()["rows"]
    assert rows[2][3] == "?" and len(rows[2]) == SPEC.width
    assert "?" in report.level.picture().splitlines()[2]


@pytest.mark.parametrize("glyph", BAD_TILES, ids=repr)
def test_validate_cli_human_report_draws_levels_with_bad_tiles(tmp_path, capsys, glyph):
    path = tmp_path / "level.json"
    path.write_text(with_tile(valid_doc(), glyph), encoding="utf-8")
    assert validate_main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "V1.unknown_tile" in out and "map (" in out


class _Unprintable:
    """A level-like object whose serialisation raises (a judge-step bug, not a backend one)."""

    name = "weird"

    def to_dict(self):
        raise IndexError("index 255 is out of bounds for axis 0 with size 3")


class _Report:
    valid = False
    failures = ({"gate": "V1", "code": "V1.unknown_tile", "message": "unknown tile", "where": "$.rows[2]"},)
    level = _Unprintable()

    def feedback(self):
        return "V1.unknown_tile: unknown tile"


def test_a_judging_bug_is_a_failed_attempt_and_every_attempt_is_stored(store):
    teacher = Teacher(with_tile(valid_doc(), "@"))
    real = LevelGenerator([], store=False)._validate

    def validator(x, spec):
        return _Report() if isinstance(x, str) and "@" in x else real(x, spec)

    gen = LevelGenerator([teacher], store=store, max_attempts=1, validator=validator)
    got = gen.generate(SPEC, seed=5)
    assert got.backend == "procedural" and validate_level(got.level.to_json(), SPEC).valid
    recs = [c.record for c in store.iter_calls(LEVEL_SITE)]
    assert [(r.backend, r.valid, r.served) for r in recs] == [("llm", False, False), ("procedural", True, True)]
    assert "IndexError" in recs[0].error and recs[0].raw_output == teacher.raw
