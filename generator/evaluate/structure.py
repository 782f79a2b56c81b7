"""Structural fun proxies read from a level's layout alone (no play needed).

Everything is computed on the spawn's walkable region (4-connected, the way
actors move) with whole-array operations: tcod's Dijkstra for walking
distances, ``scipy.ndimage`` for labelling and neighbour counts.

- ``critical_path``: fewest steps from spawn to exit; ``path_ratio`` divides it
  by ``width + height`` (a corridor straight across a level is about 0.5-1).
- ``dead_ends``: walkable tiles with exactly one walkable neighbour.
- ``loops``: independent cycles that go *around* something (a pillar, a block
  of rooms).  Open floor is full of trivial cycles around single tile
  corners; by Euler's formula for planar grid graphs those are exactly the
  fully walkable 2x2 blocks, so ``loops = E - V + 1 - blocks``.
- ``branches``: regions a player can wander into off the shortest route
  (connected parts of the region once every tile on any shortest
  spawn-exit path is removed).
- ``junctions``: corridor tiles (not inside an open 2x2 block) with three or
  more walkable neighbours: forks in the passages.
- ``nearest_enemy``: walking distance from spawn to the closest enemy.
- ``wall_density``: share of wall tiles in the whole rectangle.
- ``corridor_share`` and ``rectangularity`` describe the layout style:
  rooms-and-corridors levels have rectangular open areas joined by narrow
  corridors; caves have ragged open areas.  ``rectangularity`` is the
  area-weighted share of each open blob's bounding box that it fills (open
  blobs are the union of fully walkable 3x3 blocks, i.e. a morphological
  opening, so one-tile corridors are not part of them).

>>> from engine.core.level import Level, rows_to_grid
>>> rows = ["#####", "#...#", "#.#.#", "#...#", "#####"]
>>> level = Level(name="ring", grid=rows_to_grid(rows), spawn=(1, 1), exit=(3, 3), theme="crypt")
>>> f = structure_features(level)
>>> f.critical_path, f.loops, f.dead_ends
(4, 1, 0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from engine.core.content import THEME_LAYOUT, WALKABLE, Tile
from engine.core.level import Level
from engine.core.pathing import dijkstra  # not tcod.path.dijkstra2d: it leaked native memory per call

__all__ = ["StructureFeatures", "structure_features", "layout_stats", "layout_style", "expected_style", "RECTANGULAR_ROOMS"]

#: Open areas filling at least this share of their bounding boxes read as built rooms.
RECTANGULAR_ROOMS: Final = 0.85
#: A level that is mostly one-tile passages (a maze) also reads as built, not grown.
MAZE_CORRIDOR_SHARE: Final = 0.6

_CROSS: Final = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.int32)
_UNREACHED: Final = np.iinfo(np.int32).max

LayoutStyle = Literal["rooms", "caves"]


@dataclass(frozen=True, slots=True)
class StructureFeatures:
    """Layout measurements of one level (see the module docstring for each)."""

    walkable: int
    reachable_share: float
    critical_path: int  #: -1 when the exit cannot be reached
    path_ratio: float
    dead_ends: int
    loops: int
    branches: int
    junctions: int
    off_path_share: float
    nearest_enemy: float  #: nan without reachable enemies
    wall_density: float
    corridor_share: float
    rectangularity: float  #: nan without open areas
    doors: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def style(self) -> LayoutStyle:
        return layout_style(self)


def _walk_distances(region: NDArray[np.bool_], start: tuple[int, int]) -> NDArray[np.int64]:
    """Steps from ``start`` (x, y) to every tile of ``region`` (4-connected); unreachable = int32 max."""
    x, y = start
    inside = 0 <= y < region.shape[0] and 0 <= x < region.shape[1] and bool(region[y, x])
    return dijkstra(region.astype(np.int32), [(x, y)] if inside else [], 1, 0).astype(np.int64)


def _open_blocks(mask: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], int]:
    """Tiles inside at least one fully walkable 2x2 block, and how many such blocks there are."""
    block = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
    inside = np.zeros_like(mask)
    inside[:-1, :-1] |= block
    inside[1:, :-1] |= block
    inside[:-1, 1:] |= block
    inside[1:, 1:] |= block
    return inside, int(block.sum())


def _rectangularity(mask: NDArray[np.bool_]) -> float:
    rooms = ndimage.binary_opening(mask, structure=np.ones((3, 3), dtype=bool))
    labels, n = ndimage.label(rooms)
    if n == 0:
        return math.nan
    areas = ndimage.sum_labels(rooms, labels, index=np.arange(1, n + 1))
    boxes = ndimage.find_objects(labels)
    box_areas = np.array([(s[0].stop - s[0].start) * (s[1].stop - s[1].start) for s in boxes], dtype=np.float64)
    return float(areas.sum() / box_areas.sum())


def structure_features(level: Level) -> StructureFeatures:
    """Measure ``level``'s layout.  Works on invalid levels too (unreachable parts just don't count)."""
    grid = level.grid
    h, w = grid.shape
    walkable = WALKABLE[np.minimum(grid, len(WALKABLE) - 1)]
    labels, _ = ndimage.label(walkable)  # default structure is 4-connected
    sx, sy = level.spawn
    inside = 0 <= sy < h and 0 <= sx < w and walkable[sy, sx]
    region = labels == labels[sy, sx] if inside else np.zeros_like(walkable)
    n_region = int(region.sum())
    n_walkable = int(walkable.sum())

    d_spawn = _walk_distances(region, level.spawn)
    ex, ey = level.exit
    exit_ok = 0 <= ey < h and 0 <= ex < w and bool(region[ey, ex])
    critical = int(d_spawn[ey, ex]) if exit_ok else -1
    if exit_ok:
        d_exit = _walk_distances(region, level.exit)
        on_path = region & (d_spawn + d_exit == critical)
    else:
        on_path = np.zeros_like(region)
    off_path = region & ~on_path
    _, branches = ndimage.label(off_path)

    neighbours = ndimage.convolve(region.astype(np.int32), _CROSS, mode="constant", cval=0)
    in_block, n_blocks = _open_blocks(region)
    edges = int((region[:, :-1] & region[:, 1:]).sum() + (region[:-1, :] & region[1:, :]).sum())
    loops = edges - n_region + 1 - n_blocks if n_region else 0
    corridor = region & ~in_block

    enemy_d = [
        int(d_spawn[e.y, e.x])
        for e in level.enemies
        if 0 <= e.y < h and 0 <= e.x < w and d_spawn[e.y, e.x] != _UNREACHED
    ]
    return StructureFeatures(
        walkable=n_walkable,
        reachable_share=n_region / n_walkable if n_walkable else 0.0,
        critical_path=critical,
        path_ratio=critical / (w + h) if critical >= 0 else math.nan,
        dead_ends=int((region & (neighbours == 1)).sum()),
        loops=int(loops),
        branches=int(branches),
        junctions=int((corridor & (neighbours >= 3)).sum()),
        off_path_share=float(off_path.sum()) / n_region if n_region else 0.0,
        nearest_enemy=float(min(enemy_d)) if enemy_d else math.nan,
        wall_density=float(np.count_nonzero(grid == Tile.WALL)) / grid.size,
        corridor_share=float(corridor.sum()) / n_region if n_region else 0.0,
        rectangularity=_rectangularity(region),
        doors=int(np.count_nonzero(grid == Tile.DOOR)),
    )


def layout_style(features: StructureFeatures) -> LayoutStyle:
    """``"rooms"`` when open areas are rectangular (or the level is a maze of corridors), else ``"caves"``.

    >>> from engine.core.level import Level, rows_to_grid
    >>> box = ["#" * 8] + ["#" + "." * 6 + "#"] * 4 + ["#" * 8]
    >>> layout_style(structure_features(Level(name="b", grid=rows_to_grid(box), spawn=(1, 1), exit=(6, 4), theme="crypt")))
    'rooms'
    """
    if math.isnan(features.rectangularity):
        return "rooms" if features.corridor_share >= MAZE_CORRIDOR_SHARE else "caves"
    return "rooms" if features.rectangularity >= RECTANGULAR_ROOMS else "caves"


def expected_style(theme: str) -> LayoutStyle | None:
    """Layout style the content catalogue expects for ``theme`` (None for an unknown theme)."""
    style = THEME_LAYOUT.get(theme)
    return style if style in ("rooms", "caves") else None  # type: ignore[return-value]


def layout_stats(level: Any) -> dict[str, float] | None:
    """The :data:`generator.evaluate.metrics.STRUCTURE_KEYS` statistics of one level (``None`` if it does not parse).

    ``rooms`` counts open areas: connected blobs of the union of fully walkable 3x3 blocks (a
    morphological opening, so one-tile corridors are not rooms); ``path`` is the walking distance
    from spawn to exit (-1 if unreachable); the rest come from
    :func:`structure_features`.
    """
    from generator.evaluate.metrics import as_level

    lv = as_level(level)
    if lv is None:
        return None
    f = structure_features(lv)
    walk = WALKABLE[np.minimum(lv.grid, len(WALKABLE) - 1)]
    rooms = ndimage.label(ndimage.binary_opening(walk, structure=np.ones((3, 3), dtype=bool)))[1]
    return {"rooms": float(rooms), "corridor_share": f.corridor_share, "dead_ends": float(f.dead_ends),
            "loops": float(f.loops), "doors": float(f.doors), "wall_density": f.wall_density,
            "path": float(f.critical_path)}
