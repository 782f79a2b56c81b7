"""A hand-built 20x12 level that passes every gate, and the single edits that break it (one code each).

Shared by the validation tests, the batch-validation benchmark's tests and the ``validate`` CLI tests.
"""

from __future__ import annotations

from engine.core.level import LevelSpec

ROWS = [
    "####################",
    "#..................#",
    "#..................#",
    "#....####..........#",
    "#....#..#..........#",
    "#....#..#..........#",
    "#....##+#..........#",
    "#..................#",
    "#..................#",
    "#..................#",
    "#..................#",
    "####################",
]
SPEC = LevelSpec(width=20, height=12, difficulty=3, enemies=2, items=2, theme="crypt")


def good() -> dict:
    return {
        "name": "hall",
        "width": 20,
        "height": 12,
        "rows": list(ROWS),
        "spawn": {"x": 1, "y": 1},
        "exit": {"x": 18, "y": 10},
        "enemies": [{"kind": "rat", "x": 10, "y": 5}, {"kind": "skeleton", "x": 15, "y": 2}],
        "items": [{"kind": "potion", "x": 6, "y": 4}, {"kind": "treasure", "x": 3, "y": 9}],
        "theme": "crypt",
    }


def put(doc: dict, x: int, y: int, ch: str) -> dict:
    row = doc["rows"][y]
    doc["rows"][y] = row[:x] + ch + row[x + 1:]
    return doc


def mutate(fn):
    doc = good()
    fn(doc)
    return doc


BREAKS = {
    "row_length": (lambda d: d["rows"].__setitem__(3, d["rows"][3][:-1]), [("V1.row_length", "$.rows[3]")]),
    "row_count": (lambda d: (d["rows"].pop(8), d.update(exit={"x": 18, "y": 9})),
                  [("V1.row_count", "$.rows"), ("V1.spec_height", "$.height")]),
    "unknown_tile": (lambda d: put(d, 10, 7, "X"), [("V1.unknown_tile", "(10, 7)")]),
    "nul_tile": (lambda d: put(d, 10, 7, "\x00"), [("V1.unknown_tile", "(10, 7)")]),
    "non_ascii_tile": (lambda d: put(d, 10, 7, "é"), [("V1.unknown_tile", "(10, 7)")]),
    "unknown_theme": (lambda d: d.update(theme="moon"), [("V1.unknown_theme", "$.theme")]),
    "theme_mismatch": (lambda d: d.update(theme="cave"), [("V1.theme_mismatch", "$.theme")]),
    "unknown_enemy": (lambda d: d["enemies"][1].update(kind="dragon"), [("V1.unknown_enemy_kind", "$.enemies[1].kind")]),
    "unknown_item": (lambda d: d["items"][0].update(kind="ring"), [("V1.unknown_item_kind", "$.items[0].kind")]),
    "open_border": (lambda d: put(d, 5, 0, "."), [("V2.open_border", "(5, 0)")]),
    "door_in_border": (lambda d: put(d, 19, 4, "+"), [("V2.open_border", "(19, 4)")]),
    "on_wall": (lambda d: d["enemies"][0].update(x=8, y=4), [("V3.on_wall", "$.enemies[0]")]),
    "exit_on_wall": (lambda d: d.update(exit={"x": 19, "y": 10}), [("V3.on_wall", "$.exit")]),
    "overlap": (lambda d: d["items"][1].update(x=10, y=5), [("V3.overlap", "$.items[1]")]),
    "exit_on_spawn": (lambda d: d.update(exit={"x": 1, "y": 1}), [("V3.overlap", "$.exit")]),
    "out_of_bounds": (lambda d: d["enemies"][0].update(x=25), [("V3.out_of_bounds", "$.enemies[0]")]),
    "spawn_missing": (lambda d: d.pop("spawn"), [("V4.spawn_missing", "$.spawn")]),
    "spawn_null": (lambda d: d.update(spawn=None), [("V4.spawn_missing", "$.spawn")]),
    "exit_missing": (lambda d: d.pop("exit"), [("V4.exit_missing", "$.exit")]),
    "enemy_count": (lambda d: d["enemies"].clear(), [("V5.enemy_count", "$.enemies")]),
    "enemy_near_spawn": (lambda d: d["enemies"][0].update(x=4, y=5), [("V5.enemy_near_spawn", "$.enemies[0]")]),
    "enemy_diagonal_4": (lambda d: d["enemies"][0].update(x=5, y=2), [("V5.enemy_near_spawn", "$.enemies[0]")]),
    "unreachable_item": (lambda d: put(d, 7, 6, "#"), [("V6.disconnected", "(6, 4)"), ("V6.unreachable_item", "$.items[0]")]),
    "unreachable_exit": (lambda d: (put(d, 7, 6, "#"), d["items"].pop(0), d.update(exit={"x": 7, "y": 5})),
                         [("V6.disconnected", "(6, 4)"), ("V6.unreachable_exit", "$.exit")]),
    "unreachable_enemy": (lambda d: (put(d, 7, 6, "#"), d["items"].pop(0), d["enemies"][0].update(x=7, y=4)),
                          [("V6.disconnected", "(6, 4)"), ("V6.unreachable_enemy", "$.enemies[0]")]),
    "disconnected": (lambda d: (put(d, 7, 6, "#"), d["items"].pop(0)), [("V6.disconnected", "(6, 4)")]),
}
