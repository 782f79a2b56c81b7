"""Distance maps and paths on a level's grid, from python-tcod.

Walls never move, so a distance map *to* a tile is valid for the whole
level: :class:`DistanceMaps` keeps the recently used ones.  Actors then walk
"downhill" on the map and treat tiles held by other actors as blocked.  With
``capacity=0`` every request is computed from scratch (the benchmark's
baseline); the steps chosen are identical either way.

Points are ``(x, y)``; arrays are ``[y, x]`` (tcod's ``ij`` order).

>>> import numpy as np
>>> walk = np.ones((3, 5), dtype=bool); walk[:2, 2] = False
>>> maps = DistanceMaps(walk)
>>> step_toward(maps.to((4, 0)), (0, 0), blocked=set())
(1, 1)
>>> shortest_path(walk, (0, 0), (4, 0))
[(0, 0), (1, 1), (2, 2), (3, 1), (4, 0)]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Iterable
from typing import Final

import numpy as np
import tcod.path
from numpy.typing import NDArray

#: Edge costs: diagonals cost a little more so paths look natural; a step is one turn either way.
CARDINAL: Final = 2
DIAGONAL: Final = 3
UNREACHABLE: Final = int(np.iinfo(np.int32).max)

#: Neighbour offsets in a fixed order, so ties break the same way every run.
NEIGHBOURS: Final[tuple[tuple[int, int], ...]] = (
    (0, -1), (1, 0), (0, 1), (-1, 0), (1, -1), (1, 1), (-1, 1), (-1, -1),
)


def distance_map(walkable: NDArray[np.bool_], goals: list[tuple[int, int]] | tuple[tuple[int, int], ...],
                 cost: NDArray[np.integer] | None = None) -> NDArray[np.int32]:
    """Dijkstra distance ``[y, x]`` from every tile to the nearest goal ``(x, y)``.

    ``cost`` (defaults to 1 on walkable tiles) lets a caller make some tiles
    dearer, e.g. next to enemies.  Unreachable tiles hold :data:`UNREACHABLE`.
    """
    if cost is None:
        cost = walkable.astype(np.int8)
    return dijkstra(cost, goals, CARDINAL, DIAGONAL)


def steps_from(walkable: NDArray[np.bool_], start: tuple[int, int]) -> NDArray[np.int32]:
    """Fewest 4-connected steps ``[y, x]`` from ``start`` ``(x, y)`` to every tile, as gate V6 and the
    procedural teacher walk; unreachable tiles hold :data:`UNREACHABLE`."""
    return dijkstra(walkable.astype(np.int8), [start], 1, 0)


def dijkstra(cost: NDArray[np.integer], roots: Iterable[tuple[int, int]], cardinal: int, diagonal: int) -> NDArray[np.int32]:
    """Distance ``[y, x]`` from the nearest root ``(x, y)``; a tile's ``cost`` 0 is a wall; unreachable = int32 max.

    ``tcod.path.Pathfinder`` on a ``SimpleGraph``: the same distances as
    ``tcod.path.dijkstra2d(dist, cost, cardinal, diagonal)`` (checked on random
    grids), but ``dijkstra2d`` (tcod 21) kept ~4 KB of native memory per call,
    17 MB per 1,000 requests of the soak benchmark.
    """
    graph = tcod.path.SimpleGraph(cost=cost, cardinal=cardinal, diagonal=diagonal)
    finder = tcod.path.Pathfinder(graph)
    for x, y in roots:
        finder.add_root((y, x))
    finder.resolve()
    return np.array(finder.distance, dtype=np.int32)


def step_toward(dist: NDArray[np.int32], pos: tuple[int, int], blocked: Container[tuple[int, int]]) -> tuple[int, int] | None:
    """The neighbour of ``pos`` that is closest to the map's goal and not ``blocked``.

    Returns ``None`` when no free neighbour is closer than ``pos`` itself.
    """
    x, y = pos
    h, w = dist.shape
    best, best_d = None, int(dist[y, x])
    for dx, dy in NEIGHBOURS:
        nx, ny = x + dx, y + dy
        if 0 <= nx < w and 0 <= ny < h:
            d = int(dist[ny, nx])
            if d < best_d and (nx, ny) not in blocked:
                best, best_d = (nx, ny), d
    return best


def path_from_map(dist: NDArray[np.int32], start: tuple[int, int]) -> list[tuple[int, int]]:
    """Walk downhill from ``start`` to the map's goal: ``[start, ..., goal]`` (``[start]`` if unreachable)."""
    if dist[start[1], start[0]] >= UNREACHABLE:
        return [start]
    ij = tcod.path.hillclimb2d(dist, (start[1], start[0]), True, True)
    return [(int(j), int(i)) for i, j in ij]


def shortest_path(walkable: NDArray[np.bool_], start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """A* path ``[start, ..., goal]`` over walkable tiles; ``[]`` when there is none."""
    ij = tcod.path.path2d(
        walkable.astype(np.int8), start_points=[(start[1], start[0])], end_points=[(goal[1], goal[0])],
        cardinal=CARDINAL, diagonal=DIAGONAL,
    )
    return [(int(j), int(i)) for i, j in ij]


def critical_path_length(walkable: NDArray[np.bool_], start: tuple[int, int], goal: tuple[int, int]) -> int:
    """Fewest moves (8 directions, one turn each) from ``start`` to ``goal``; -1 if unreachable.

    This is a level's *par*: the turns a player who knew the map would need.
    """
    ij = tcod.path.path2d(
        walkable.astype(np.int8), start_points=[(start[1], start[0])], end_points=[(goal[1], goal[0])],
        cardinal=1, diagonal=1,
    )
    return len(ij) - 1 if len(ij) else -1


class DistanceMaps:
    """Distance maps to single tiles on one fixed grid, least-recently-used cache.

    ``capacity=0`` disables caching (every call recomputes): the naive baseline.
    """

    def __init__(self, walkable: NDArray[np.bool_], capacity: int = 64) -> None:
        self.walkable = walkable
        self._cost = walkable.astype(np.int8)
        self.capacity = capacity
        self._maps: OrderedDict[tuple[int, int], NDArray[np.int32]] = OrderedDict()
        self.computed = 0  #: maps computed so far (cache misses)

    def to(self, goal: tuple[int, int]) -> NDArray[np.int32]:
        """The distance map to ``goal``; treat it as read-only."""
        found = self._maps.get(goal)
        if found is not None:
            self._maps.move_to_end(goal)
            return found
        self.computed += 1
        dist = distance_map(self.walkable, [goal], self._cost)
        if self.capacity > 0:
            dist.flags.writeable = False
            self._maps[goal] = dist
            if len(self._maps) > self.capacity:
                self._maps.popitem(last=False)
        return dist
