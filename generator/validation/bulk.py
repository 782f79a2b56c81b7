"""The batch fast lane: screen thousands of well-formed levels with a few array operations.

Reading levels one by one costs more than judging them, so for a batch of
:class:`Level` objects or Level JSON texts this module reads every field of
every level with C-level calls (``map``, ``itertools.chain``, one msgspec
decode per text), stacks same-shaped grids and runs the gates' *pass/fail*
tests over the whole stack.  A level that passes every test is valid; any
other level goes through the full validator, which writes its failures.  So
the screen only needs to be exact about *passing*, and the batch verdicts are
the single-level verdicts by construction (a test checks they agree).
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
from generator.validation.gates import DENSITY_RANGE, SPAWN_SAFE_RADIUS, _border, enemy_tolerance
from generator.validation.parse import _WIRE, N_TILES, _Wire, _no_duplicate_keys
from generator.validation.report import ValidationLimits

_X, _Y, _K = operator.attrgetter("x"), operator.attrgetter("y"), operator.attrgetter("kind")
_ENEMY_SET = frozenset(ENEMY_KINDS)
_ITEM_SET = frozenset(ITEM_KINDS)
_THEMES = frozenset(ALL_THEMES)
_INT = frozenset((int,))
_BIG = 2**31 - 1
_WALL = int(Tile.WALL)


class _Rec:
    """What the screen needs of one level, read without checks (the screen checks)."""

    __slots__ = ("k", "grid", "spawn", "exit", "enemies", "items", "theme", "name", "level", "wire")

    def __init__(self, k: int, grid: NDArray[np.uint8] | None, spawn: Any, exit: Any, enemies: Sequence[Any],
                 items: Sequence[Any], theme: Any, name: Any, level: Level | None, wire: _Wire | None) -> None:
        self.k, self.grid, self.spawn, self.exit = k, grid, spawn, exit
        self.enemies, self.items, self.theme, self.name = enemies, items, theme, name
        self.level, self.wire = level, wire


def screen(items: list[Any], specs: list[LevelSpec | None], limits: ValidationLimits,
           chunk: int) -> tuple[list[bool], list[Level | None], list[_Wire | None]]:
    """Per item: True when it surely passes every gate (plus the Level when one is at hand).

    False means "not screened": the caller runs the full validator on it.
    """
    n = len(items)
    ok = [False] * n
    levels: list[Level | None] = [None] * n
    wires: list[_Wire | None] = [None] * n
    groups: dict[tuple[int, int], list[_Rec]] = {}
    text_groups: dict[tuple[int, int], list[_Wire]] = {}
    text_keys: dict[tuple[int, int], list[int]] = {}
    for k, item in enumerate(items):
        if type(item) is Level:
            g = item.grid
            if 0 < g.shape[0] <= limits.max_height and 0 < g.shape[1] <= limits.max_width:
                groups.setdefault(g.shape, []).append(
                    _Rec(k, g, item.spawn, item.exit, item.enemies, item.items, item.theme, item.name, item, None))
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
    for shape, ws in text_groups.items():
        h, wd = shape
        flat = "".join(itertools.chain.from_iterable(w.rows for w in ws)).encode("ascii", "replace")
        grids = CHAR_LOOKUP[np.frombuffer(flat, dtype=np.uint8)].reshape(len(ws), h, wd)
        recs = groups.setdefault(shape, [])
        for k, w, g in zip(text_keys[shape], ws, grids):
            recs.append(_Rec(k, g, (w.spawn.x, w.spawn.y), (w.exit.x, w.exit.y),  # type: ignore[union-attr]
                             w.enemies, w.items, w.theme, w.name, None, w))
    for shape, recs in groups.items():
        for s in range(0, len(recs), chunk):
            part = recs[s:s + chunk]
            passed = _screen_stack(part, shape, [specs[r.k] for r in part], limits)
            for r, p in zip(part, passed.tolist()):
                ok[r.k] = p
                levels[r.k] = r.level
    return ok, levels, wires


def _screen_stack(recs: list[_Rec], shape: tuple[int, int], specs: list[LevelSpec | None],
                  limits: ValidationLimits) -> NDArray[np.bool_]:
    n = len(recs)
    h, w = shape
    fail = np.zeros(n, dtype=bool)
    # ---- fields that must merely be well-formed (the full validator explains any that are not)
    themes = [r.theme for r in recs]
    names = [r.name for r in recs]
    if not set(map(type, themes)) <= {str} or not set(themes) <= _THEMES or not set(map(type, names)) <= {str}:
        return fail  # all False: let the full validator sort it out
    if max(map(len, names), default=0) > limits.max_name_length:
        return fail
    ens = [r.enemies for r in recs]
    its = [r.items for r in recs]
    ne = np.fromiter(map(len, ens), dtype=np.int64, count=n)
    ni = np.fromiter(map(len, its), dtype=np.int64, count=n)
    if n and max(int(ne.max()), int(ni.max())) > limits.max_entities:
        return fail
    chain = itertools.chain.from_iterable
    all_e = list(chain(ens))
    all_i = list(chain(its))
    try:
        ex, ey, ek = list(map(_X, all_e)), list(map(_Y, all_e)), list(map(_K, all_e))
        ix, iy, ik = list(map(_X, all_i)), list(map(_Y, all_i)), list(map(_K, all_i))
        pts = list(chain(r.spawn for r in recs)) + list(chain(r.exit for r in recs))
    except (AttributeError, TypeError):
        return fail
    types = set(map(type, ex)) | set(map(type, ey)) | set(map(type, ix)) | set(map(type, iy)) | set(map(type, pts))
    if not types <= _INT:  # exactly int: bools, floats and the like go to the full validator
        return fail
    if len(pts) != 4 * n:
        return fail
    try:
        vals = np.array(ex + ey + ix + iy + pts, dtype=np.int64)
    except OverflowError:
        return fail
    if vals.size and (vals.min() < 0 or vals.max() >= _BIG):
        return fail
    n_e, n_i = len(ex), len(ix)
    a_ex, a_ey = vals[:n_e], vals[n_e:2 * n_e]
    a_ix, a_iy = vals[2 * n_e:2 * n_e + n_i], vals[2 * n_e + n_i:2 * (n_e + n_i)]
    p = vals[2 * (n_e + n_i):]
    if not set(ek) <= _ENEMY_SET or not set(ik) <= _ITEM_SET or len(pts) != 4 * n:
        return fail
    # ---- spec checks
    for j, spec in enumerate(specs):
        if spec is not None and (spec.width != w or spec.height != h or spec.theme != themes[j]
                                 or abs(int(ne[j]) - spec.enemies) > enemy_tolerance(spec.enemies)):
            fail[j] = True
    # ---- tiles
    g = np.stack([r.grid for r in recs])  # type: ignore[misc]
    flat = g.reshape(n, -1)
    fail |= flat.max(axis=1) >= N_TILES
    wall = flat == _WALL
    bmask = _border(h, w)[0].ravel()
    fail |= ~wall[:, bmask].all(axis=1)
    density = np.count_nonzero(wall, axis=1) / (h * w)
    fail |= (density < DENSITY_RANGE[0]) | (density > DENSITY_RANGE[1])
    fail |= components.label_stack(~wall.reshape(n, h, w))[1] != 1
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
    fail[tl[oob]] = True
    txc, tyc = np.minimum(tx, w - 1), np.minimum(ty, h - 1)
    key = tl * (h * w) + tyc * w + txc
    fail[tl[wall[tl, tyc * w + txc]]] = True
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1]) + 1
    fail[tl[order[dup]]] = True
    if len(ex):
        e_x = tx[2 * n:2 * n + len(ex)]
        e_y = ty[2 * n:2 * n + len(ex)]
        near = np.maximum(np.abs(e_x - sx[lvl_e]), np.abs(e_y - sy[lvl_e])) <= SPAWN_SAFE_RADIUS
        fail[lvl_e[near]] = True
    return ~fail
