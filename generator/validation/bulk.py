"""The batch fast lane: judge thousands of well-formed levels with a few array operations.

Reading levels one by one costs more than judging them, so for a batch of
:class:`Level` objects or Level JSON texts this module reads every field of
every level with comprehensions and C-level calls (one msgspec decode per
text), stacks same-shaped grids and runs every gate's *pass/fail* test over
the whole stack as array expressions: bounds, walls and shared tiles through
flat (level, y, x) keys, spawn safety by broadcasting against each level's
spawn, density and closed borders as per-level reductions, and one
connected-component labelling of the levels still passing.  The verdicts
are exact both ways (:data:`PASS`/:data:`FAIL`); a level the screen cannot
vouch for (odd types, limits, unclean JSON) is :data:`UNKNOWN` and goes
through the full validator.  The failures of a FAIL level are written later,
by the full validator, when the caller first reads them (see
``validate_batch``); a test checks that batch and single reports agree.

Stacks reuse per-thread buffers (:func:`components.scratch`): fresh
megabyte-sized arrays come from ``mmap`` and their page faults cost about as
much as the labelling itself.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.core.content import ALL_THEMES, CHAR_LOOKUP, ENEMY_KINDS, ITEM_KINDS, Tile
from engine.core.level import Level, LevelSpec

from generator.validation import components
from generator.validation.gates import DENSITY_RANGE, SPAWN_SAFE_RADIUS
from generator.validation.parse import _WIRE, N_TILES, _Wire, _no_duplicate_keys
from generator.validation.report import ValidationLimits

_ENEMY_SET = frozenset(ENEMY_KINDS)
_ITEM_SET = frozenset(ITEM_KINDS)
_THEMES = frozenset(ALL_THEMES)
_INT = frozenset((int,))
_BIG = 2**31 - 1
_WALL = int(Tile.WALL)
_U8 = np.dtype(np.uint8)
_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_MAX = np.maximum.reduce
_SUM = np.add.reduce


class _Cols:
    """What the screen needs of some same-shaped levels, column by column, read without checks (the screen checks)."""

    __slots__ = ("keys", "grids", "spawns", "exits", "enemies", "items", "themes", "names", "levels")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.grids: list[NDArray[np.uint8]] = []
        self.spawns: list[Any] = []
        self.exits: list[Any] = []
        self.enemies: list[Sequence[Any]] = []
        self.items: list[Sequence[Any]] = []
        self.themes: list[Any] = []
        self.names: list[Any] = []
        self.levels: list[Level | None] = []

    def part(self, s: int, e: int) -> _Cols:
        out = _Cols()
        for name in self.__slots__:
            setattr(out, name, getattr(self, name)[s:e])
        return out


#: Tiles per stack at most (512 levels of 48x32): the stack, its labels and the per-thread
#: buffers they live in stay a few megabytes, in cache, whatever the map size.
STACK_TILES = 512 * 48 * 32

#: Screen verdicts: surely valid, surely invalid (the full validator will find failures), not screened.
PASS, FAIL, UNKNOWN = 1, 0, -1


def screen(items: list[Any], specs: list[LevelSpec | None], limits: ValidationLimits,
           chunk: int) -> tuple[list[int], list[Level | None], list[_Wire | None]]:
    """Per item: :data:`PASS`, :data:`FAIL` or :data:`UNKNOWN` (plus the Level or wire read, when there is one).

    PASS and FAIL are exact: every test here is one of the gates' own
    conditions, run only on well-formed levels (plain ints, known kinds and
    themes, a uint8 grid), so a FAIL level is one the full validator finds
    failures in.  UNKNOWN ("not screened": odd types, limits, a text that is
    not clean Level JSON) sends the item to the full validator.
    """
    n = len(items)
    ok = [UNKNOWN] * n
    levels: list[Level | None] = [None] * n
    wires: list[_Wire | None] = [None] * n
    level_keys: dict[tuple[int, int], Sequence[int]] = {}
    text_groups: dict[tuple[int, int], list[_Wire]] = {}
    text_keys: dict[tuple[int, int], list[int]] = {}
    grids0 = _all_level_grids(items)
    shapes0 = set(map(_SHAPE, grids0)) if grids0 is not None else set()
    if len(shapes0) == 1:  # the usual batch: Level objects of one size
        shape0 = next(iter(shapes0))
        if len(shape0) == 2 and 0 < shape0[0] <= limits.max_height and 0 < shape0[1] <= limits.max_width:
            level_keys[shape0] = range(n)  # a range: chunks of it are runs of items
        todo: Any = ()
    else:
        todo = enumerate(items)
    for k, item in todo:
        if type(item) is Level:
            shape = item.grid.shape
            if 0 < shape[0] <= limits.max_height and 0 < shape[1] <= limits.max_width:
                level_keys.setdefault(shape, []).append(k)
        elif isinstance(item, (bytes, str)):
            if len(item) > limits.max_bytes:
                continue
            raw = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
            try:
                w = _WIRE.decode(raw)
            except Exception:  # noqa: BLE001 - the full validator will say what is wrong
                continue
            rows = w.rows
            h = len(rows)
            if (h == w.height and 0 < h <= limits.max_height and 0 < w.width <= limits.max_width
                    and set(map(len, rows)) == {w.width} and w.spawn is not None and w.exit is not None
                    and len(w.name) <= limits.max_name_length and _no_duplicate_keys(raw, w)):
                text_groups.setdefault((h, w.width), []).append(w)
                text_keys.setdefault((h, w.width), []).append(k)
                wires[k] = w
    groups: dict[tuple[int, int], _Cols] = {}
    for shape, ks in level_keys.items():
        cols = groups[shape] = _Cols()
        if type(ks) is range:
            lvs, cols.grids = items, grids0  # type: ignore[assignment]
        else:
            lvs = [items[k] for k in ks]
            cols.grids = [lv.grid for lv in lvs]
        cols.keys, cols.levels = ks, lvs  # type: ignore[assignment]
        cols.spawns, cols.exits = [lv.spawn for lv in lvs], [lv.exit for lv in lvs]
        cols.enemies, cols.items = [lv.enemies for lv in lvs], [lv.items for lv in lvs]
        cols.themes, cols.names = [lv.theme for lv in lvs], [lv.name for lv in lvs]
    for shape, ws in text_groups.items():
        h, wd = shape
        flat = "".join(itertools.chain.from_iterable(w.rows for w in ws)).encode("ascii", "replace")
        grids = CHAR_LOOKUP[np.frombuffer(flat, dtype=np.uint8)].reshape(len(ws), h, wd)
        cols = groups.setdefault(shape, _Cols())
        cols.keys += text_keys[shape]
        cols.grids += list(grids)
        cols.spawns += [(w.spawn.x, w.spawn.y) for w in ws]  # type: ignore[union-attr]
        cols.exits += [(w.exit.x, w.exit.y) for w in ws]  # type: ignore[union-attr]
        cols.enemies += [w.enemies for w in ws]
        cols.items += [w.items for w in ws]
        cols.themes += [w.theme for w in ws]
        cols.names += [w.name for w in ws]
        cols.levels += [None] * len(ws)
    for shape, cols in groups.items():
        step = max(1, min(chunk, STACK_TILES // (shape[0] * shape[1])))  # big maps: fewer per stack
        for s in range(0, len(cols.keys), step):
            part = cols.part(s, s + step) if s or len(cols.keys) > step else cols
            keys = part.keys
            run = type(keys) is range
            verdicts = _screen_stack(part, shape, specs[keys.start:keys.stop] if run else [specs[k] for k in keys],
                                     limits)
            if verdicts is None:
                continue
            if run:
                ok[keys.start:keys.stop] = verdicts.tolist()
                levels[keys.start:keys.stop] = part.levels
                continue
            for k, p, lv in zip(keys, verdicts.tolist(), part.levels):
                ok[k] = p
                levels[k] = lv
    return ok, levels, wires


def _walkable_counts(rows: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Ones per row of a 0/1 ``(n, m)`` uint8 array.

    When ``m`` is a multiple of 8 of at most 8 * 255, the row is summed as
    uint64 words: each of a word's 8 byte lanes then holds at most 255, so no
    lane carries into the next, and the 8 lanes add up to the count (about 5x
    faster than a widening sum).
    """
    n, m = rows.shape
    if m % 8 or m > 8 * 255:
        return _SUM(rows, axis=1, dtype=np.int64)
    lanes = _SUM(rows.view(np.uint64), axis=1)
    return _SUM(lanes.view(np.uint8).reshape(n, 8), axis=1, dtype=np.int64)


def _all_level_grids(items: list[Any]) -> list[Any] | None:
    """Every item's grid when every item is a :class:`Level` (None otherwise)."""
    if not items or set(map(type, items)) != {Level}:
        return None
    return [lv.grid for lv in items]


def _spec_fail(specs: list[LevelSpec | None], w: int, h: int, themes: list[Any], ne: NDArray[np.int64]
               ) -> NDArray[np.bool_] | None:
    """Levels whose size, theme or enemy count the spec does not allow (None: no specs at all)."""
    if not any(specs):
        return None
    if None in specs:
        k = [j for j, sp in enumerate(specs) if sp is not None]
        out = np.zeros(len(specs), dtype=bool)
        out[k] = _spec_fail([specs[j] for j in k], w, h, [themes[j] for j in k], ne[k])  # type: ignore[index]
        return out
    want = np.array([sp.enemies for sp in specs], dtype=np.int64)  # type: ignore[union-attr]
    tol = np.maximum(1, want // 4)  # enemy_tolerance, for every spec at once
    bad = np.abs(ne - want) > tol
    bad |= np.array([sp.width != w or sp.height != h or sp.theme != t  # type: ignore[union-attr]
                     for sp, t in zip(specs, themes)], dtype=bool)
    return bad


def _screen_stack(cols: _Cols, shape: tuple[int, int], specs: list[LevelSpec | None],
                  limits: ValidationLimits) -> NDArray[np.int8] | None:
    """PASS or FAIL per level of one same-shaped stack; None when any level needs the full reader."""
    n = len(cols.keys)
    h, w = shape
    fail = np.zeros(n, dtype=bool)
    # ---- fields that must merely be well-formed (the full validator explains any that are not)
    themes = cols.themes
    names = cols.names
    if not set(map(type, themes)) <= {str} or not set(themes) <= _THEMES or not set(map(type, names)) <= {str}:
        return None  # not screened: let the full validator sort it out
    if max(map(len, names), default=0) > limits.max_name_length:
        return None
    ens = cols.enemies
    its = cols.items
    ne = np.fromiter(map(len, ens), dtype=np.int64, count=n)
    ni = np.fromiter(map(len, its), dtype=np.int64, count=n)
    if n and max(int(ne.max()), int(ni.max())) > limits.max_entities:
        return None
    chain = itertools.chain.from_iterable
    all_e = list(chain(ens))
    all_i = list(chain(its))
    try:
        # comprehensions, not map(attrgetter): the interpreter specialises these slot reads
        ex, ey, ek = [t.x for t in all_e], [t.y for t in all_e], [t.kind for t in all_e]
        ix, iy, ik = [t.x for t in all_i], [t.y for t in all_i], [t.kind for t in all_i]
        pts = list(chain(cols.spawns)) + list(chain(cols.exits))
    except (AttributeError, TypeError):
        return None
    types = set(map(type, ex)) | set(map(type, ey)) | set(map(type, ix)) | set(map(type, iy)) | set(map(type, pts))
    if not types <= _INT:  # exactly int: bools, floats and the like go to the full validator
        return None
    if len(pts) != 4 * n:
        return None
    try:
        vals = np.fromiter(chain((ex, ey, ix, iy, pts)), dtype=np.int64, count=2 * (len(ex) + len(ix)) + len(pts))
    except (OverflowError, ValueError, TypeError):
        return None
    if vals.size and (vals.min() < 0 or vals.max() >= _BIG):
        return None
    n_e, n_i = len(ex), len(ix)
    a_ex, a_ey = vals[:n_e], vals[n_e:2 * n_e]
    a_ix, a_iy = vals[2 * n_e:2 * n_e + n_i], vals[2 * n_e + n_i:2 * (n_e + n_i)]
    p = vals[2 * (n_e + n_i):]
    if not set(ek) <= _ENEMY_SET or not set(ik) <= _ITEM_SET or len(pts) != 4 * n:
        return None
    # ---- spec checks
    spec_bad = _spec_fail(specs, w, h, themes, ne)
    if spec_bad is not None:
        fail |= spec_bad
    # ---- tiles
    grids = cols.grids
    if set(map(_DTYPE, grids)) != {_U8}:
        return None
    g = np.concatenate(grids, out=components.scratch("grids", n * h, (w,), np.uint8)).reshape(n, h, w)
    fail |= _MAX(g.reshape(n, h * w), axis=1) >= N_TILES
    # The labelling board is the walkable mask itself: a level that reaches the labelling has a
    # closed border, so its all-wall bottom row keeps it apart from the next level in the board.
    board = components.scratch("board", n, (h, w), np.uint8)
    walk = board.view(bool)
    np.not_equal(g, _WALL, out=walk)
    # the border is closed when its rows and columns hold no walkable tile
    fail |= _MAX(walk[:, 0], axis=1) | _MAX(walk[:, h - 1], axis=1) | _MAX(walk[:, :, 0], axis=1)
    fail |= _MAX(walk[:, :, w - 1], axis=1)
    hw1 = h * w  # one level's stretch of the board
    n_wall = h * w - _walkable_counts(board.reshape(n, hw1))
    # density outside DENSITY_RANGE, in whole tiles (the same float test the gate makes)
    density = n_wall / (h * w)
    fail |= (density < DENSITY_RANGE[0]) | (density > DENSITY_RANGE[1])
    # ---- things: spawn, exit, enemies, items of every level in one table
    sx, sy = p[0:2 * n:2], p[1:2 * n:2]
    xx, xy = p[2 * n::2], p[2 * n + 1::2]
    lvl_e = np.repeat(np.arange(n), ne)
    lvl_i = np.repeat(np.arange(n), ni)
    ar = np.arange(n)
    tx = np.concatenate((sx, xx, a_ex, a_ix))
    ty = np.concatenate((sy, xy, a_ey, a_iy))
    tl = np.concatenate((ar, ar, lvl_e, lvl_i))
    oob = (tx >= w) | (ty >= h)
    if oob.any():
        fail[tl[oob]] = True
        np.minimum(tx, w - 1, out=tx)
        np.minimum(ty, h - 1, out=ty)
    key = tl * hw1 + ty * w + tx
    fail[tl[board.reshape(-1)[key] == 0]] = True
    # two things on one tile: write each thing's number at its tile (a scratch buffer never
    # cleared: only the tiles just written are read); a thing not reading its own number back shares its tile
    marks = components.scratch("marks", n, (h, w), np.int32).reshape(-1)
    ids = np.arange(key.size, dtype=np.int32)
    marks[key] = ids
    fail[tl[marks[key] != ids]] = True
    if n_e:
        near = np.maximum(np.abs(a_ex - sx[lvl_e]), np.abs(a_ey - sy[lvl_e])) <= SPAWN_SAFE_RADIUS
        fail[lvl_e[near]] = True
    # ---- one walkable region: the costly test, so only for levels that passed everything else
    left = np.flatnonzero(~fail)
    labels = components.scratch("labels16", left.size, (h, w), np.uint16)
    if left.size == n:
        fail |= components.region_counts(board, labels) != 1
    elif left.size:
        sub = np.take(board, left, axis=0, out=components.scratch("sub", left.size, (h, w), np.uint8))
        fail[left] = components.region_counts(sub, labels) != 1
    return (~fail).astype(np.int8)
