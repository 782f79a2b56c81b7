"""Structural fun proxies on hand-built levels whose answers can be counted by eye."""

from __future__ import annotations

import math

import pytest

from engine.core.level import Level, Placed, rows_to_grid
from generator.evaluate.structure import layout_style, structure_features


def make(rows: list[str], spawn=(1, 1), exit=None, enemies=(), theme="crypt") -> Level:
    exit = exit or (len(rows[0]) - 2, len(rows) - 2)
    return Level(name="t", grid=rows_to_grid(rows), spawn=spawn, exit=exit,
                 enemies=[Placed(k, x, y) for k, x, y in enemies], theme=theme)


# A straight corridor: 8 steps, two dead ends (its two tips), no loops, no side branches.
CORRIDOR = ["###########", "#.........#", "###########"]

# Ring around a pillar plus a stub going down: 1 loop, 1 dead end at the stub's tip.
RING = [
    "#######",
    "#.....#",
    "#.###.#",
    "#.....#",
    "###.###",
    "###.###",
    "#######",
]

# Plus-shaped corridors: one four-way junction, four dead ends.
PLUS = [
    "#######",
    "###.###",
    "###.###",
    "#.....#",
    "###.###",
    "###.###",
    "#######",
]

# Two rectangular rooms joined by a one-tile corridor with a door.
ROOMS = [
    "##############",
    "#....#########",
    "#....#########",
    "#....+....####",
    "#....####....#",
    "#########....#",
    "#########....#",
    "##############",
]

# A ragged cave blob.
CAVE = [
    "##############",
    "###....#######",
    "##.......#####",
    "#..........###",
    "##..........##",
    "###.......####",
    "#####...######",
    "##############",
]


def test_corridor_has_known_path_dead_ends_and_no_loops():
    f = structure_features(make(CORRIDOR, spawn=(1, 1), exit=(9, 1), enemies=[("rat", 6, 1)]))
    assert f.critical_path == 8
    assert f.path_ratio == pytest.approx(8 / (11 + 3))
    assert f.dead_ends == 2
    assert f.loops == 0
    assert f.branches == 0
    assert f.off_path_share == 0.0
    assert f.nearest_enemy == 5
    assert f.corridor_share == 1.0
    assert math.isnan(f.rectangularity)
    assert f.wall_density == pytest.approx((33 - 9) / 33)


def test_ring_counts_one_loop_and_one_dead_end():
    f = structure_features(make(RING, spawn=(1, 1), exit=(5, 3)))
    assert f.loops == 1
    assert f.dead_ends == 1  # the bottom of the stub
    assert f.critical_path == 6
    # Both ways round the pillar are shortest, so only the stub is off the route.
    assert f.branches == 1
    assert f.junctions == 1  # where the stub leaves the ring


def test_plus_has_one_junction_and_four_dead_ends():
    f = structure_features(make(PLUS, spawn=(1, 3), exit=(5, 3)))
    assert f.junctions == 1
    assert f.dead_ends == 4
    assert f.branches == 2  # up arm and down arm
    assert f.loops == 0


def test_open_room_has_no_loops_despite_many_grid_cycles():
    box = ["#" * 10] + ["#" + "." * 8 + "#"] * 6 + ["#" * 10]
    f = structure_features(make(box))
    assert f.loops == 0
    assert f.dead_ends == 0
    assert f.critical_path == 7 + 5
    assert f.rectangularity == 1.0


def test_unreachable_exit_and_enemy_are_reported_not_raised():
    rows = ["#######", "#..#..#", "#######"]
    f = structure_features(make(rows, spawn=(1, 1), exit=(5, 1), enemies=[("rat", 4, 1)]))
    assert f.critical_path == -1
    assert math.isnan(f.path_ratio)
    assert math.isnan(f.nearest_enemy)
    assert f.reachable_share == pytest.approx(0.5)


def test_rooms_and_caves_are_told_apart():
    rooms = structure_features(make(ROOMS, spawn=(1, 1), exit=(12, 6)))
    cave = structure_features(make(CAVE, spawn=(3, 1), exit=(7, 6), theme="cave"))
    assert rooms.doors == 1
    assert rooms.rectangularity == 1.0
    assert layout_style(rooms) == "rooms"
    assert cave.rectangularity < 0.85
    assert layout_style(cave) == "caves"
    assert rooms.corridor_share > cave.corridor_share
