"""Gates V1 (tiles) to V7: one level at a time (:func:`check_level`, :func:`check_one`) or a stack.

Size: over 400 lines on purpose. The single-level and whole-stack routes of
gates V1-V7 share one failure writer; kept side by side they stay comparable
line by line (tests compare them on every gate).

Everything per tile is a whole-array NumPy operation, and
:mod:`generator.validation.components` finds the walkable regions
(4-connected, the way actors move; doors are walkable; an unknown glyph,
already a V1 failure, is treated as floor so the other gates do not pile
misleading failures on it).  A single level's things (tens, not thousands)
are checked with plain Python over its thing table; a stack's things run as
one table of all things in the stack.  Both routes hand what they found to
one writer, :func:`_write`, so their failures read the same, and tests
compare the two on every gate.  Python only writes failures for levels that
have some.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.core.content import Tile
from engine.core.level import Level, LevelSpec

from generator.validation import components
from generator.validation.parse import (ENEMY, EXIT, ITEM, N_TILES, SPAWN, Candidate, NotSimple, level_candidate,
                                        level_fields)
from generator.validation.report import ValidationLimits

#: Enemies must be more than this many steps (Chebyshev: diagonal moves count 1) from the spawn.
SPAWN_SAFE_RADIUS: Final = 4
#: Allowed share of wall tiles, inclusive.
DENSITY_RANGE: Final = (0.10, 0.60)

_WALL: Final = int(Tile.WALL)
_GATE_ORDER: Final = {f"V{i}": i for i in range(8)}


def enemy_tolerance(n: int) -> int:
    """How far the enemy count may stray from the spec's ``n``: ``max(1, floor(n / 4))``.

    >>> enemy_tolerance(0), enemy_tolerance(8), enemy_tolerance(30)
    (1, 2, 7)
    """
    return max(1, n // 4)


@lru_cache(maxsize=64)
def _border(h: int, w: int) -> tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.intp]]:
    mask = np.zeros((h, w), dtype=bool)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    ys, xs = np.nonzero(mask)
    return mask, xs, ys


def _thing_label(code: int, i: int, kind: str) -> tuple[str, str]:
    if code == SPAWN:
        return "the spawn", "$.spawn"
    if code == EXIT:
        return "the exit", "$.exit"
    if code == ENEMY:
        return f"enemy {i} ({kind})", f"$.enemies[{i}]"
    return f"item {i} ({kind})", f"$.items[{i}]"


@lru_cache(maxsize=64)
def _border_flat(h: int, w: int) -> NDArray[np.intp]:
    return np.flatnonzero(_border(h, w)[0])




def _enemy_count(c: Candidate, spec: LevelSpec | None) -> None:
    if spec is not None:
        want = spec.enemies
        tol = enemy_tolerance(want)
        if abs(c.n_enemies - want) > tol:
            c.fail("V5", "V5.enemy_count",
                   f"there are {c.n_enemies} enemies but the spec asks for {want} (allowed {max(0, want - tol)}"
                   f"..{want + tol})", "$.enemies")


def check_one(c: Candidate, spec: LevelSpec | None, limits: ValidationLimits) -> None:
    """Append the V1-tile..V7 failures of one candidate (same failures as a stack of one in :func:`check_stack`)."""
    _enemy_count(c, spec)
    tc = c.tc
    found = _analyse(tc, c.tx, c.ty, c.grid, tc.index(SPAWN) if SPAWN in tc else -1)
    if found is not None:
        _write(c, limits.max_failures_per_code, *found)


def check_level(lv: Level, spec: LevelSpec | None, limits: ValidationLimits) -> Candidate | None:
    """Judge a well-formed :class:`Level` directly: None when it passes every gate, else its failures.

    The failures are exactly those of ``read_any`` + ``spec_checks`` +
    :func:`check_one` (a test compares them), but a good level never builds
    a :class:`Candidate` or any failure text.  Raises :class:`NotSimple` for a
    level that needs the full reader (bad types, unknown theme or kinds,
    negative coordinates, a size the spec does not ask for, limits exceeded).
    """
    g, theme, ne, ni, xs, ys, ek, ik = level_fields(lv, limits)
    if spec is not None and (spec.width != g.shape[1] or spec.height != g.shape[0] or spec.theme != theme):
        raise NotSimple
    tc = _table_codes(ne, ni)
    found = _analyse(tc, xs, ys, g, 0)
    count_bad = spec is not None and abs(ne - spec.enemies) > enemy_tolerance(spec.enemies)
    if found is None and not count_bad:
        return None
    c = level_candidate(lv, g, theme, ne, ni, xs, ys, ek, ik, list(tc))
    _enemy_count(c, spec)
    if found is not None:
        _write(c, limits.max_failures_per_code, *found)
    gate_sorted([c])
    return c


_NONE: Final = np.zeros(0, dtype=np.intp)
_MAX: Final = np.maximum.reduce
_COUNT: Final = np.count_nonzero


@lru_cache(maxsize=1024)
def _table_codes(ne: int, ni: int) -> tuple[int, ...]:
    return (SPAWN, EXIT, *(ENEMY,) * ne, *(ITEM,) * ni)


def _analyse(tc: Sequence[int], tx: list[int], ty: list[int], g: NDArray[np.uint8] | None,
             sj: int) -> tuple[Any, ...] | None:
    """Every gate from V1 (tiles) to V7 for one level's grid and thing table; None when all pass.

    Otherwise the arguments :func:`_write` needs after ``c`` and the cap.
    ``sj`` is the spawn's row in the table (-1: no spawn).  Whole-grid tests
    are NumPy operations and one labelling call; the things (tens, not
    thousands) are checked with plain Python.
    """
    m = len(tc)
    sx, sy = (tx[sj], ty[sj]) if sj >= 0 else (-10**6, -10**6)
    near: list[int] = []
    if sj >= 0 and ENEMY in tc:
        r = SPAWN_SAFE_RADIUS
        e0 = tc.index(ENEMY)  # enemies are one run in the table
        e1 = e0 + tc.count(ENEMY)
        near = [j for j, x, y in zip(range(e0, e1), tx[e0:e1], ty[e0:e1]) if -r <= x - sx <= r and -r <= y - sy <= r]
    if g is None:
        return (None, (), near, sx, sy) if near else None
    h, w = g.shape
    walk = g != _WALL  # unknown glyphs (already V1 failures) count as floor
    flat = walk.ravel()
    unknown = bool(_MAX(g.ravel()) >= N_TILES)
    n_walk = _COUNT(flat)
    # The border is closed when the interior holds every walkable tile (two counts, no gather).
    open_js = np.flatnonzero(flat[_border_flat(h, w)]) if n_walk != _COUNT(walk[1:-1, 1:-1]) else _NONE
    density = (flat.size - n_walk) / flat.size
    dens_bad = not DENSITY_RANGE[0] <= density <= DENSITY_RANGE[1]
    labels, regions = components.label4(walk.view(np.uint8))
    v3: list[tuple[int, int, int]] = []
    unreach: list[int] = []
    main = 0
    if m and max(tx) < w and max(ty) < h:  # the usual case: everything on the map
        pos = [y * w + x for x, y in zip(tx, ty)]
        walkable = flat.take(pos)
        if _COUNT(walkable) != m or len(set(pos)) != m:
            inb = [True] * m
            v3 = _v3(pos, inb, walkable.tolist())
    else:
        inb = [x < w and y < h for x, y in zip(tx, ty)]
        pos = [y * w + x if ok else 0 for x, y, ok in zip(tx, ty, inb)]
        walkable = flat[pos] & np.array(inb, dtype=bool)
        v3 = _v3(pos, inb, walkable.tolist())
    if regions > 1 and sj >= 0 and walkable[sj]:  # with one region every thing off the walls is reachable
        lab = labels.ravel()[pos]
        main = int(lab[sj])
        unreach = np.flatnonzero(walkable & (lab != main)).tolist()
    if unknown or open_js.size or dens_bad or regions > 1 or v3 or near or unreach:
        return ((g, w, h, unknown, open_js, labels if regions > 1 else None, main, unreach, density, dens_bad),
                v3, near, sx, sy)
    return None


def _v3(pos: list[int], inb: list[bool], walkable: list[bool]) -> list[tuple[int, int, int]]:
    """Things off the map, on a wall, or on a tile an earlier thing already holds, in table order."""
    v3: list[tuple[int, int, int]] = []
    seen: dict[int, int] = {}
    for j, p in enumerate(pos):
        if not inb[j]:
            v3.append((j, _OOB, -1))
            continue
        first = seen.setdefault(p, j)
        if not walkable[j]:
            v3.append((j, _ON_WALL, -1))
        elif first != j:
            v3.append((j, _OVERLAP, first))
    return v3


_OOB, _ON_WALL, _OVERLAP = 0, 1, 2


def check_stack(cands: list[Candidate], specs: list[LevelSpec | None], limits: ValidationLimits) -> None:
    """Append the V1-tile..V7 failures of every candidate; all grids share one shape (or are all None)."""
    n = len(cands)
    cap = limits.max_failures_per_code
    grid0 = cands[0].grid
    has_grid = grid0 is not None
    if has_grid:
        assert grid0 is not None
        h, w = grid0.shape
        g = np.stack([c.grid for c in cands])  # type: ignore[misc]
        board = components.mosaic(n, h, w)
        walk = board[:, :h].view(bool)
        # unknown glyphs (already V1 failures) count as floor: they are mostly things drawn in
        np.not_equal(g, _WALL, out=walk)
        unknown_any = g.max(axis=(1, 2)) >= N_TILES
        _, bxs, bys = _border(h, w)
        open_border = walk[:, bys, bxs]
        border_bad = open_border.any(axis=1)
        density = (h * w - np.count_nonzero(walk, axis=(1, 2))) / (h * w)
        dens_bad = (density < DENSITY_RANGE[0]) | (density > DENSITY_RANGE[1])
        labels, regions = components.label_mosaic(board)
        level_bad = unknown_any | border_bad | dens_bad | (regions > 1)
    else:
        h = w = 0
        level_bad = np.zeros(n, dtype=bool)

    # ---- the thing table: one row per spawn/exit/enemy/item of every level
    counts = np.fromiter((len(c.tc) for c in cands), dtype=np.intp, count=n)
    m = int(counts.sum())
    chain = itertools.chain.from_iterable
    code = np.fromiter(chain(c.tc for c in cands), dtype=np.int64, count=m)
    x = np.fromiter(chain(c.tx for c in cands), dtype=np.int64, count=m)
    y = np.fromiter(chain(c.ty for c in cands), dtype=np.int64, count=m)
    lvl = np.repeat(np.arange(n, dtype=np.int64), counts)
    is_spawn = code == SPAWN
    sx = np.full(n, -10**6, dtype=np.int64)
    sy = np.full(n, -10**6, dtype=np.int64)
    has_spawn = np.zeros(n, dtype=bool)
    sx[lvl[is_spawn]] = x[is_spawn]
    sy[lvl[is_spawn]] = y[is_spawn]
    has_spawn[lvl[is_spawn]] = True

    enemy = code == ENEMY
    near = enemy & has_spawn[lvl] & (np.maximum(np.abs(x - sx[lvl]), np.abs(y - sy[lvl])) <= SPAWN_SAFE_RADIUS)
    flag = near.copy()
    if has_grid:
        inb = (x < w) & (y < h)
        xc, yc = np.minimum(x, w - 1), np.minimum(y, h - 1)  # clamped, so one gather serves all rows
        pos = yc * w + xc
        standable = inb & walk[lvl, yc, xc]
        on_wall = inb & ~standable
        key = np.where(inb, lvl * (h * w) + pos, -1 - np.arange(m))
        order = np.argsort(key, kind="stable")
        sk = key[order]
        overlap = np.zeros(m, dtype=bool)
        if m > 1:
            overlap[order[1:]] = sk[1:] == sk[:-1]
        lab = labels[lvl, yc, xc]
        spawn_ok = np.zeros(n, dtype=bool)
        spawn_lab = np.zeros(n, dtype=lab.dtype)
        sp = is_spawn & standable
        spawn_ok[lvl[sp]] = True
        spawn_lab[lvl[sp]] = lab[sp]
        unreachable = ~is_spawn & standable & spawn_ok[lvl] & (lab != spawn_lab[lvl])
        v3_bad = ~inb | on_wall | overlap
        flag |= v3_bad | unreachable
    if m:
        level_bad |= np.bincount(lvl[flag], minlength=n) > 0

    starts = np.concatenate(([0], np.cumsum(counts))).tolist()
    # Flagged things per level, found once for the whole stack (few: only broken levels have any).
    by_level: dict[int, tuple[list[int], list[int], list[int]]] = {}
    for slot, mask in enumerate((v3_bad, near, unreachable) if has_grid else (near,)):
        idx = np.flatnonzero(mask)
        for k, j in zip(lvl[idx].tolist(), idx.tolist()):
            by_level.setdefault(k, ([], [], []))[slot if has_grid else 1].append(j)
    bad_levels = np.flatnonzero(level_bad).tolist()
    bad_set = set(bad_levels)
    for k in (range(n) if any(specs) else bad_levels):
        c = cands[k]
        _enemy_count(c, specs[k])
        if k not in bad_set:
            continue
        lo = starts[k]
        v3_js, near_js, unreach_js = by_level.get(k, ([], [], []))
        near_l = [j - lo for j in near_js]
        skx, sky = int(sx[k]), int(sy[k])
        if not has_grid:
            _write(c, cap, None, (), near_l, skx, sky)
            continue
        v3: list[tuple[int, int, int]] = []
        for j in v3_js:
            if not inb[j]:
                v3.append((j - lo, _OOB, -1))
            elif on_wall[j]:
                v3.append((j - lo, _ON_WALL, -1))
            else:
                first = next(p for p in range(lo, j) if inb[p] and x[p] == x[j] and y[p] == y[j])
                v3.append((j - lo, _OVERLAP, first - lo))
        grid_info = (g[k], w, h, bool(unknown_any[k]), np.flatnonzero(open_border[k]) if border_bad[k] else _NONE,
                     labels[k] if regions[k] > 1 else None, int(spawn_lab[k]) if spawn_ok[k] else 0,
                     [j - lo for j in unreach_js], float(density[k]), bool(dens_bad[k]))
        _write(c, cap, grid_info, v3, near_l, skx, sky)


def _write(c: Candidate, cap: int, grid_info: tuple[Any, ...] | None, v3: Sequence[tuple[int, int, int]],
           near: list[int], sx: int, sy: int) -> None:
    """Write one broken level's failures, in the order the gates name them (gate_sorted then orders by gate).

    ``grid_info`` is None for a level without a usable grid (only V5 placement
    can be checked then); ``v3`` holds (thing, reason, first thing on the same
    tile); ``near``/``unreach`` are indices into the candidate's thing table.
    """
    things = list(zip(c.tc, c.ti, c.tx, c.ty, c.tk))
    if grid_info is not None:
        gk, w, h, unknown, open_js, many_labels, main, unreach, density, dens_bad = grid_info
        if unknown:
            uy, ux = np.nonzero(gk >= N_TILES)
            for yy, xx in zip(uy[:cap].tolist(), ux[:cap].tolist()):
                glyph = f"{c.rows[yy][xx]!r} " if c.rows is not None else ""
                c.fail("V1", "V1.unknown_tile", f"unknown tile {glyph}at ({xx}, {yy}) in row {yy}; rows hold only "
                       "'#' wall, '.' floor and '+' door" + _glyph_hint(glyph), f"({xx}, {yy})", (xx, yy))
            _more(c, "V1", "V1.unknown_tile", len(uy), cap, "$.rows", "unknown tiles")
        if len(open_js):
            _, bxs, bys = _border(h, w)
            for j in open_js[:cap].tolist():
                xx, yy = int(bxs[j]), int(bys[j])
                c.fail("V2", "V2.open_border", f"the border is open at ({xx}, {yy}); the outer rows and columns "
                       "must all be wall '#'", f"({xx}, {yy})", (xx, yy))
            _more(c, "V2", "V2.open_border", len(open_js), cap, "$.rows", "open border tiles")
        for j, reason, first in v3:
            tcode, i, tx, ty, kind = things[j]
            what, where = _thing_label(tcode, i, kind)
            if reason == _OOB:
                c.fail("V3", "V3.out_of_bounds", f"{what} at ({tx}, {ty}) is outside the {w}x{h} map", where)
            elif reason == _ON_WALL:
                c.fail("V3", "V3.on_wall", f"{what} stands on a wall at ({tx}, {ty}); move it to a floor tile",
                       where, (tx, ty))
            else:
                other, _ = _thing_label(things[first][0], things[first][1], things[first][4])
                c.fail("V3", "V3.overlap", f"{what} shares the tile ({tx}, {ty}) with {other}; give each thing "
                       "its own tile", where, (tx, ty))
    for j in near:
        tcode, i, tx, ty, kind = things[j]
        what, where = _thing_label(tcode, i, kind)
        d = max(abs(tx - sx), abs(ty - sy))
        c.fail("V5", "V5.enemy_near_spawn",
               f"{what} at ({tx}, {ty}) is {d} step{'s' if d != 1 else ''} from the spawn at "
               f"({sx}, {sy}); enemies must be more than {SPAWN_SAFE_RADIUS} steps away",
               where, (tx, ty))
    if grid_info is None:
        return
    if many_labels is not None:
        _disconnected(c, many_labels, main, cap)
    for j in unreach:
        tcode, i, tx, ty, kind = things[j]
        what, where = _thing_label(tcode, i, kind)
        code_name = {EXIT: "V6.unreachable_exit", ENEMY: "V6.unreachable_enemy", ITEM: "V6.unreachable_item"}[tcode]
        c.fail("V6", code_name, f"{what} at ({tx}, {ty}) cannot be reached from the spawn at "
               f"({sx}, {sy}); open a floor or door path to it", where, (tx, ty))
    if dens_bad:
        pct = density * 100
        lo_pct, hi_pct = (int(v * 100) for v in DENSITY_RANGE)
        if density < DENSITY_RANGE[0]:
            c.fail("V7", "V7.density_low", f"walls cover {pct:.0f}% of the map; add walls to reach "
                   f"{lo_pct}-{hi_pct}%", "$.rows")
        else:
            c.fail("V7", "V7.density_high", f"walls cover {pct:.0f}% of the map; open it up to "
                   f"{lo_pct}-{hi_pct}%", "$.rows")


_THING_GLYPHS: Final = {"'@' ": "the spawn goes in \"spawn\"", "'>' ": "the exit goes in \"exit\"",
                         "'<' ": "the spawn goes in \"spawn\""}


def _glyph_hint(glyph: str) -> str:
    """Point an LLM that drew things into the rows at the fields where they belong."""
    if glyph in _THING_GLYPHS:
        return f" ({_THING_GLYPHS[glyph]}, not in rows; put '.' here)"
    if len(glyph) == 4 and glyph[1].isalpha() or glyph[1:2] in "!$?%*":
        return " (enemies and items go in \"enemies\"/\"items\", not in rows; put '.' here)"
    return ""


def _disconnected(c: Candidate, labels: NDArray[np.int32], main: int, cap: int) -> None:
    flat = labels.ravel()
    # Regions are numbered in scan order (lo..lo+n-1; lo > 1 in a stacked batch), so the running
    # maximum steps up exactly at each region's first tile, and shifting lo to 1 lets bincount size them.
    acc = np.maximum.accumulate(flat)
    first = np.flatnonzero(acc[1:] != acc[:-1]) + 1
    if flat[0]:
        first = np.concatenate(([0], first))
    ids = flat[first]
    shifted = flat - (int(ids[0]) - 1)
    np.maximum(shifted, 0, out=shifted)
    sizes = np.bincount(shifted)[1:]
    if main == 0:  # no usable spawn: call the largest region the main one
        main = int(ids[np.argmax(sizes)])
    w = labels.shape[1]
    others = [(i, f, s) for i, f, s in zip(ids.tolist(), first.tolist(), sizes.tolist()) if i != main]
    for _, f, s in others[:cap]:
        xx, yy = f % w, f // w
        c.fail("V6", "V6.disconnected", f"a walkable region of {s} tile{'s' if s != 1 else ''} starting at ({xx}, {yy}) "
               "is cut off from the spawn's region; connect it or fill it with wall", f"({xx}, {yy})", (xx, yy))
    _more(c, "V6", "V6.disconnected", len(others), cap, "$.rows", "cut-off regions")


def _more(c: Candidate, gate: str, code: str, total: int, cap: int, where: str, what: str) -> None:
    if total > cap:
        c.fail(gate, code, f"... and {total - cap:,} more {what}", where)


def gate_sorted(cands: list[Candidate]) -> None:
    """Put each candidate's failures in gate order (stable within a gate)."""
    for c in cands:
        if len(c.failures) > 1:
            c.failures.sort(key=lambda f: _GATE_ORDER[f.gate])
