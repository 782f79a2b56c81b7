"""Gates V0 and V1 (shape): turn any input into a :class:`Candidate` without trusting it.

Size: over 400 lines on purpose. The fast typed decode and the field-by-field
diagnosis must agree on what is a valid level; they live together.

Inputs are JSON text or bytes, a decoded ``dict``, a
:class:`~engine.core.level.LevelDoc` or a :class:`~engine.core.level.Level`.
Nothing here raises on bad input: every problem becomes a located
:class:`Failure`, and the candidate keeps whatever parts were usable so the
later gates can still report on them (an LLM fixes more per retry when it
hears about every problem at once).

Text takes a fast path first: one typed msgspec decode that succeeds for any
well-formed level.  Only when it fails is the text decoded loosely and
walked field by field to say exactly what is wrong and where.
"""

from __future__ import annotations

import json
import math
import operator
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from engine.core.content import ALL_THEMES, CHAR_LOOKUP, ENEMY_KINDS, ITEM_KINDS, Tile
from engine.core.level import DuplicateKey, Level, LevelDoc, LevelSpec, Placed, pairs_once

from generator.validation.report import Failure, ValidationLimits

#: Thing type codes in a candidate's thing table.
SPAWN, EXIT, ENEMY, ITEM = 0, 1, 2, 3
_NAMES = {SPAWN: "spawn", EXIT: "exit", ENEMY: "enemies", ITEM: "items"}
_N_TILES = len(Tile)
_BIG = 2**31 - 1  # coordinates past this are off any map; clamping keeps the thing table int64


class Candidate:
    """A level as far as it could be read, plus the failures found reading it.

    The thing table ``tc, ti, tx, ty, tk`` (type code, index in its list,
    x, y, kind; parallel lists) holds spawn, exit, enemies and items, in that
    order, with non-negative integer coordinates only (bad ones were already
    reported as V0 failures and left out).
    """

    __slots__ = ("name", "theme", "grid", "tc", "ti", "tx", "ty", "tk", "n_enemies", "n_items", "failures", "source", "rows",
                 "has_spawn", "has_exit", "entities_ok", "spawn", "exit")

    def __init__(self) -> None:
        self.name: str = ""
        self.theme: str | None = None
        self.grid: NDArray[np.uint8] | None = None
        self.tc: list[int] = []
        self.ti: list[int] = []
        self.tx: list[int] = []
        self.ty: list[int] = []
        self.tk: list[str] = []
        self.n_enemies = 0  # entries in the enemies list, readable or not
        self.n_items = 0
        self.failures: list[Failure] = []
        self.source: Level | None = None
        self.rows: list[str] | None = None  # the wire rows, kept to quote unknown glyphs
        self.has_spawn = False
        self.has_exit = False
        self.entities_ok = True  # False once any enemy or item entry was unreadable
        self.spawn: tuple[int, int] | None = None
        self.exit: tuple[int, int] | None = None

    def fail(self, gate: str, code: str, message: str, where: str, at: tuple[int, int] | None = None) -> None:
        self.failures.append(Failure(gate, code, message, where, at))

    def buildable(self) -> bool:
        return (self.grid is not None and self.spawn is not None and self.exit is not None
                and self.entities_ok and self.theme is not None)

    def build_level(self) -> Level | None:
        if self.source is not None:
            return self.source
        if not self.buildable():
            return None
        placed = [(code, Placed(k, x, y)) for code, x, y, k in zip(self.tc, self.tx, self.ty, self.tk) if code >= ENEMY]
        return Level(name=self.name, grid=self.grid, spawn=self.spawn, exit=self.exit,  # type: ignore[arg-type]
                     enemies=[p for code, p in placed if code == ENEMY],
                     items=[p for code, p in placed if code == ITEM], theme=self.theme)  # type: ignore[arg-type]


# ------------------------------------------------------------------ fast path


class _Pt(msgspec.Struct):
    x: int
    y: int


class _Thing(msgspec.Struct):
    kind: str
    x: int
    y: int


class _Wire(msgspec.Struct):
    width: int
    height: int
    rows: list[str]
    enemies: list[_Thing]
    items: list[_Thing]
    theme: str
    name: str = ""
    spawn: _Pt | None = None
    exit: _Pt | None = None


_WIRE = msgspec.json.Decoder(_Wire)
_LOOSE = msgspec.json.Decoder()


def read_any(obj: Any, limits: ValidationLimits) -> Candidate:
    """Turn any supported input into a candidate (never raises for bad content)."""
    if isinstance(obj, Level):
        return _from_level(obj, limits)
    if isinstance(obj, (str, bytes, bytearray, memoryview)):
        return _from_text(obj, limits)
    if isinstance(obj, LevelDoc):
        try:
            obj = msgspec.to_builtins(obj)
        except Exception as exc:  # noqa: BLE001 - a hand-built doc may hold anything
            c = Candidate()
            c.fail("V0", "V0.schema", f"the LevelDoc holds values that are not JSON: {exc}", "$")
            return c
    return _from_builtins(obj, limits)


def _from_text(data: str | bytes | bytearray | memoryview, limits: ValidationLimits) -> Candidate:
    if isinstance(data, str):
        size = len(data)  # characters; the byte check below catches the rest
        if size > limits.max_bytes:
            return _too_big(size, limits)
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            c = Candidate()
            c.fail("V0", "V0.parse", "the text holds unpaired surrogate characters; send UTF-8 JSON", "$")
            return c
    else:
        raw = bytes(data)
    if len(raw) > limits.max_bytes:
        return _too_big(len(raw), limits)
    if not raw.strip():
        c = Candidate()
        c.fail("V0", "V0.parse", "the input is empty; send one Level JSON object", "$")
        return c
    try:
        wire = _WIRE.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError):
        wire = None
    if wire is not None and _no_duplicate_keys(raw, wire):
        return _from_wire(wire, limits)
    return _from_text_slow(raw, limits)


def _too_big(size: int, limits: ValidationLimits) -> Candidate:
    c = Candidate()
    c.fail("V0", "V0.too_large", f"the input is {size:,} bytes; the limit is {limits.max_bytes:,}", "$")
    return c


def _no_duplicate_keys(raw: bytes, wire: _Wire) -> bool:
    """True when the text has exactly as many ``":`` key ends as the decoded level has keys.

    A mismatch (duplicate keys, extra fields, odd spacing, ``":`` inside a
    string) sends the text down the slow path, which finds the real cause.
    """
    keys = 6 + 2 * ((wire.spawn is not None) + (wire.exit is not None)) + 3 * (len(wire.enemies) + len(wire.items))
    keys += (b'"name"' in raw) + (b'"spawn"' in raw) + (b'"exit"' in raw)
    return raw.count(b'":') == keys


def _from_wire(w: _Wire, limits: ValidationLimits) -> Candidate:
    c = Candidate()
    c.name = w.name
    if len(w.name) > limits.max_name_length:
        c.fail("V0", "V0.schema", f"the name is {len(w.name)} characters; keep it under {limits.max_name_length}", "$.name")
    _theme(c, w.theme)
    _point(c, SPAWN, w.spawn.x if w.spawn else None, w.spawn.y if w.spawn else None, w.spawn is not None)
    _point(c, EXIT, w.exit.x if w.exit else None, w.exit.y if w.exit else None, w.exit is not None)
    ens, its = w.enemies, w.items
    ek = [t.kind for t in ens]
    ik = [t.kind for t in its]
    if not _fast_things(c, [t.x for t in ens], [t.y for t in ens], ek, [t.x for t in its], [t.y for t in its], ik,
                        limits):
        _things(c, ENEMY, [(t.kind, t.x, t.y) for t in ens], limits)
        _things(c, ITEM, [(t.kind, t.x, t.y) for t in its], limits)
    _rows(c, w.rows, w.width, w.height, limits)
    return c


# ------------------------------------------------------------------ slow path


def _from_text_slow(raw: bytes, limits: ValidationLimits) -> Candidate:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        c = Candidate()
        c.fail("V0", "V0.parse", f"the input is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON", "$")
        return c
    try:
        obj = _LOOSE.decode(raw)
    except RecursionError:
        c = Candidate()
        c.fail("V0", "V0.parse", "the JSON is nested too deeply; a level is a flat object", "$")
        return c
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        c = Candidate()
        msg = str(exc)
        if "truncated" in msg:
            msg = "the JSON ends early (truncated); send the whole object"
        c.fail("V0", "V0.parse", f"not valid JSON: {msg}", "$")
        return c
    try:
        json.loads(text, object_pairs_hook=pairs_once)
    except DuplicateKey as dup:
        c = Candidate()
        c.fail("V0", "V0.duplicate_key", f"the key {dup.key!r} appears twice in one object; keep one", "$")
        return c
    except (ValueError, RecursionError):
        pass  # msgspec accepted it, so this is a dialect difference, not a problem
    return _from_builtins(obj, limits)


def _from_builtins(obj: Any, limits: ValidationLimits) -> Candidate:
    c = Candidate()
    if not isinstance(obj, dict):
        c.fail("V0", "V0.schema",
               f"a level must be a JSON object with name, width, height, rows, spawn, exit, enemies, "
               f"items and theme; got {_type_name(obj)}", "$")
        return c
    name = obj.get("name", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        c.fail("V0", "V0.schema", f"name must be a string, got {_type_name(name)}", "$.name")
    elif len(name) > limits.max_name_length:
        c.fail("V0", "V0.schema", f"the name is {len(name)} characters; keep it under {limits.max_name_length}", "$.name")
    else:
        c.name = name
    width = _int(c, obj, "width", "$.width")
    height = _int(c, obj, "height", "$.height")
    theme = obj.get("theme")
    if not isinstance(theme, str):
        c.fail("V0", "V0.schema", f"theme must be a string ({', '.join(ALL_THEMES)}), got {_type_name(theme)}", "$.theme")
    else:
        _theme(c, theme)
    for code, key in ((SPAWN, "spawn"), (EXIT, "exit")):
        p = obj.get(key)
        if p is None:
            _point(c, code, None, None, False)
        elif not isinstance(p, dict):
            c.fail("V0", "V0.schema", f"{key} must be an object {{\"x\": int, \"y\": int}}, got {_type_name(p)}", f"$.{key}")
        else:
            x = _coord(c, p, "x", f"$.{key}.x")
            y = _coord(c, p, "y", f"$.{key}.y")
            if x is not None and y is not None:
                _point(c, code, x, y, True)
    for code, key in ((ENEMY, "enemies"), (ITEM, "items")):
        seq = obj.get(key)
        if not isinstance(seq, list):
            what = "missing" if seq is None else f"a {_type_name(seq)}"
            c.fail("V0", "V0.schema", f"{key} must be a list of {{\"kind\", \"x\", \"y\"}} objects ([] for none); it is {what}",
                   f"$.{key}")
            c.entities_ok = False
            continue
        if len(seq) > limits.max_entities:
            c.fail("V0", "V0.too_large", f"{len(seq):,} {key}; the limit is {limits.max_entities:,}", f"$.{key}")
            c.entities_ok = False
            continue
        clean: list[tuple[str, int, int] | None] = []
        for i, t in enumerate(seq):
            where = f"$.{key}[{i}]"
            if not isinstance(t, dict):
                c.fail("V0", "V0.schema", f"each of {key} must be an object with kind, x, y; got {_type_name(t)}", where)
                clean.append(None)
                continue
            kind = t.get("kind")
            x = _coord(c, t, "x", where + ".x")
            y = _coord(c, t, "y", where + ".y")
            if not isinstance(kind, str):
                c.fail("V0", "V0.schema", f"kind must be a string, got {_type_name(kind)}", where + ".kind")
                clean.append(None)
            elif x is None or y is None:
                clean.append(None)
            else:
                clean.append((kind, x, y))
        _things(c, code, clean, limits)
    rows = obj.get("rows")
    if not isinstance(rows, list):
        what = "missing" if rows is None else f"a {_type_name(rows)}"
        c.fail("V0", "V0.schema", f"rows must be a list of strings of '#', '.', '+'; it is {what}", "$.rows")
    else:
        bad = [i for i, r in enumerate(rows) if not isinstance(r, str)]
        for i in bad[: limits.max_failures_per_code]:
            c.fail("V0", "V0.schema", f"each row must be a string, got {_type_name(rows[i])}", f"$.rows[{i}]")
        if not bad:
            _rows(c, rows, width, height, limits)
    return c


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, float):
        return f"the number {v!r}" if math.isfinite(v) else f"the non-finite number {v!r}"
    return {dict: "an object", list: "a list", str: "a string", int: "an integer"}.get(type(v), type(v).__name__)


def _int(c: Candidate, obj: dict[str, Any], key: str, where: str) -> int | None:
    v = obj.get(key)
    if type(v) is not int:
        c.fail("V0", "V0.schema", f"{key} must be an integer, got {_type_name(v) if key in obj else 'nothing (missing)'}", where)
        return None
    return v


def _coord(c: Candidate, obj: dict[str, Any], key: str, where: str) -> int | None:
    v = obj.get(key)
    if type(v) is not int:
        got = _type_name(v) if key in obj else "nothing (missing)"
        c.fail("V0", "V0.schema", f"{key} must be a non-negative integer, got {got}", where)
        return None
    if v < 0:
        c.fail("V0", "V0.schema", f"{key} must be a non-negative integer (maps start at 0), got {v}", where)
        return None
    return v


# ------------------------------------------------------------------ shared


def _theme(c: Candidate, theme: str) -> None:
    if theme not in ALL_THEMES:
        c.fail("V1", "V1.unknown_theme", f"unknown theme {theme[:40]!r}; use one of {', '.join(ALL_THEMES)}", "$.theme")
    c.theme = theme


def _point(c: Candidate, code: int, x: int | None, y: int | None, present: bool) -> None:
    key = _NAMES[code]
    if not present:
        c.fail("V4", f"V4.{key}_missing", f"the level has no {key}; give exactly one {key} {{\"x\", \"y\"}} on a floor tile",
               f"$.{key}")
        return
    if x is None or y is None:
        return
    if x < 0 or y < 0:
        c.fail("V0", "V0.schema", f"{key} coordinates must be non-negative integers, got ({x}, {y})", f"$.{key}")
        return
    _add(c, code, 0, x, y, "")
    if code == SPAWN:
        c.has_spawn, c.spawn = True, (x, y)
    else:
        c.has_exit, c.exit = True, (x, y)


def _add(c: Candidate, code: int, i: int, x: int, y: int, kind: str) -> None:
    c.tc.append(code)
    c.ti.append(i)
    c.tx.append(min(x, _BIG))
    c.ty.append(min(y, _BIG))
    c.tk.append(kind)


_GETX = operator.attrgetter("x")
_GETY = operator.attrgetter("y")
_GETK = operator.attrgetter("kind")
_ENEMY_SET = frozenset(ENEMY_KINDS)
_ITEM_SET = frozenset(ITEM_KINDS)
_INT_ONLY = frozenset((int,))


def _fast_things(c: Candidate, ex: list[Any], ey: list[Any], ek: list[Any], ix: list[Any], iy: list[Any],
                 ik: list[Any], limits: ValidationLimits) -> bool:
    """Add all enemies and items in a few C-level calls when every one is well-formed; else do nothing."""
    ne, ni = len(ex), len(ix)
    if ne > limits.max_entities or ni > limits.max_entities:
        return False
    vals = ex + ey + ix + iy
    if vals and (not set(map(type, vals)) <= _INT_ONLY or min(vals) < 0 or max(vals) >= _BIG):
        return False
    if not set(ek) <= _ENEMY_SET or not set(ik) <= _ITEM_SET:
        return False
    c.tc.extend([ENEMY] * ne + [ITEM] * ni)
    c.ti.extend(range(ne))
    c.ti.extend(range(ni))
    c.tx.extend(ex)
    c.tx.extend(ix)
    c.ty.extend(ey)
    c.ty.extend(iy)
    c.tk.extend(ek)
    c.tk.extend(ik)
    c.n_enemies, c.n_items = ne, ni
    return True


def _things(c: Candidate, code: int, seq: list[tuple[str, int, int] | None], limits: ValidationLimits) -> None:
    key = _NAMES[code]
    catalogue = ENEMY_KINDS if code == ENEMY else ITEM_KINDS
    what = "enemy" if code == ENEMY else "item"
    if len(seq) > limits.max_entities:
        c.fail("V0", "V0.too_large", f"{len(seq):,} {key}; the limit is {limits.max_entities:,}", f"$.{key}")
        c.entities_ok = False
        return
    if code == ENEMY:
        c.n_enemies = len(seq)
    else:
        c.n_items = len(seq)
    for i, t in enumerate(seq):
        if t is None:
            c.entities_ok = False
            continue
        kind, x, y = t
        if x < 0 or y < 0:
            c.fail("V0", "V0.schema", f"coordinates must be non-negative integers, got ({x}, {y})", f"$.{key}[{i}]")
            c.entities_ok = False
            continue
        if kind not in catalogue:
            c.fail("V1", f"V1.unknown_{what}_kind",
                   f"unknown {what} kind {kind[:40]!r}; use one of {', '.join(catalogue)}", f"$.{key}[{i}].kind")
        _add(c, code, i, x, y, kind)


def _rows(c: Candidate, rows: list[str], width: int | None, height: int | None, limits: ValidationLimits) -> None:
    """Check the rows' shape and decode them into the grid (V1), allocating nothing oversized."""
    too_big = False
    if width is not None and width > limits.max_width:
        c.fail("V1", "V1.too_large", f"width {width:,} is over the limit of {limits.max_width}", "$.width")
        too_big = True
    if height is not None and height > limits.max_height:
        c.fail("V1", "V1.too_large", f"height {height:,} is over the limit of {limits.max_height}", "$.height")
        too_big = True
    if width is not None and width < 1 or height is not None and height < 1:
        c.fail("V1", "V1.row_count", "width and height must be at least 1", "$.width" if (width or 0) < 1 else "$.height")
    if len(rows) > limits.max_height:
        c.fail("V1", "V1.too_large", f"{len(rows):,} rows; the limit is {limits.max_height}", "$.rows")
        return
    if not rows:
        c.fail("V1", "V1.row_count", "there are no rows; give one string per row of the map", "$.rows")
        return
    lengths = set(map(len, rows))
    longest = max(lengths)
    if longest > limits.max_width:
        y = next(i for i, r in enumerate(rows) if len(r) == longest)
        c.fail("V1", "V1.too_large", f"row {y} has {longest:,} tiles; the limit is {limits.max_width}", f"$.rows[{y}]")
        return
    if too_big:
        return
    if longest == 0:
        c.fail("V1", "V1.row_length", "every row is empty; each row needs one character per tile", "$.rows")
        return
    if height is not None and len(rows) != height:
        c.fail("V1", "V1.row_count", f"there are {len(rows)} rows but height says {height}; give exactly one row per line",
               "$.rows")
    if len(lengths) > 1:
        if width is None or width not in lengths:
            counts: dict[int, int] = {}
            for r in rows:
                counts[len(r)] = counts.get(len(r), 0) + 1
            expect = max(counts, key=lambda k: (counts[k], k))
        else:
            expect = width
        bad = [y for y, r in enumerate(rows) if len(r) != expect]
        for y in bad[: limits.max_failures_per_code]:
            c.fail("V1", "V1.row_length", f"row {y} has {len(rows[y])} tiles but the rows must all have {expect}",
                   f"$.rows[{y}]")
        _more(c, "V1", "V1.row_length", len(bad), limits, "$.rows", "rows of the wrong length")
        return
    w = longest
    if width is not None and w != width:
        c.fail("V1", "V1.row_length", f"every row has {w} tiles but width says {width}; make them agree", "$.rows")
    flat = "".join(rows).encode("ascii", errors="replace")  # one byte per character, '?' for the rest
    grid = CHAR_LOOKUP[np.frombuffer(flat, dtype=np.uint8)].reshape(len(rows), w)
    c.grid = grid
    c.rows = rows


def _more(c: Candidate, gate: str, code: str, n: int, limits: ValidationLimits, where: str, what: str) -> None:
    extra = n - limits.max_failures_per_code
    if extra > 0:
        c.fail(gate, code, f"... and {extra:,} more {what}", where)


class NotSimple(Exception):
    """The level needs the full reader: the fast routes cannot take it."""


_THEME_SET = frozenset(ALL_THEMES)
_U8 = np.dtype(np.uint8)


def level_fields(lv: Level, limits: ValidationLimits) -> tuple[Any, ...]:
    """Read a well-formed :class:`Level` in a few C-level calls, or raise :class:`NotSimple`.

    Well-formed: a 2-D uint8 grid within the limits, a known theme, known
    kinds, plain non-negative ``int`` coordinates below ``2**31 - 1``: then
    :func:`_from_level` would report no failure of its own.  Returns
    ``(grid, theme, n_enemies, n_items, xs, ys, enemy_kinds, item_kinds)``,
    the coordinates in thing-table order (spawn, exit, enemies, items).
    """
    g = lv.grid
    theme = lv.theme
    if type(g) is not np.ndarray or g.ndim != 2 or g.dtype != _U8 or type(theme) is not str or theme not in _THEME_SET:
        raise NotSimple
    h, w = g.shape
    if not (0 < h <= limits.max_height and 0 < w <= limits.max_width):
        raise NotSimple
    ens, its = lv.enemies, lv.items
    ne, ni = len(ens), len(its)
    if ne > limits.max_entities or ni > limits.max_entities:
        raise NotSimple
    ek, ik = [t.kind for t in ens], [t.kind for t in its]  # comprehensions: specialised slot reads
    if not set(ek) <= _ENEMY_SET or not set(ik) <= _ITEM_SET:
        raise NotSimple
    sx, sy = lv.spawn
    ex, ey = lv.exit
    xs = [sx, ex, *[t.x for t in ens], *[t.x for t in its]]
    ys = [sy, ey, *[t.y for t in ens], *[t.y for t in its]]
    if (not set(map(type, xs)) <= _INT_ONLY or not set(map(type, ys)) <= _INT_ONLY
            or min(xs) < 0 or min(ys) < 0 or max(xs) >= _BIG or max(ys) >= _BIG):
        raise NotSimple
    return g, theme, ne, ni, xs, ys, ek, ik


def level_candidate(lv: Level, g: NDArray[np.uint8], theme: str, ne: int, ni: int, xs: list[int], ys: list[int],
                    ek: list[str], ik: list[str], tc: list[int] | None = None) -> Candidate:
    """The candidate :func:`_from_level` makes, from :func:`level_fields`' answer."""
    c = _new_candidate(Candidate)  # every slot is set here, so skip __init__'s defaults
    c.source = lv
    c.name = lv.name if isinstance(lv.name, str) else ""
    c.theme, c.grid = theme, g
    c.tc = tc if tc is not None else [SPAWN, EXIT, *[ENEMY] * ne, *[ITEM] * ni]
    c.tx, c.ty = xs, ys
    c.ti = [0, 0, *range(ne), *range(ni)]
    c.tk = ["", "", *ek, *ik]
    c.n_enemies, c.n_items = ne, ni
    c.failures = []
    c.rows = None
    c.has_spawn = c.has_exit = c.entities_ok = True
    c.spawn, c.exit = (xs[0], ys[0]), (xs[1], ys[1])
    return c


_new_candidate = object.__new__


def _from_level(level: Level, limits: ValidationLimits) -> Candidate:
    try:
        return level_candidate(level, *level_fields(level, limits))
    except Exception:  # noqa: BLE001 - NotSimple or odd values: read it field by field
        pass
    c = Candidate()
    c.source = level
    c.name = level.name if isinstance(level.name, str) else ""
    grid = level.grid
    h, w = grid.shape
    if w > limits.max_width or h > limits.max_height:
        c.fail("V1", "V1.too_large", f"the map is {w}x{h}; the limit is {limits.max_width}x{limits.max_height}", "$.rows")
    elif w == 0 or h == 0:
        c.fail("V1", "V1.row_count", f"the map is {w}x{h}; it needs at least one tile", "$.rows")
    else:
        c.grid = grid
    if isinstance(level.theme, str):
        _theme(c, level.theme)
    else:
        c.fail("V0", "V0.schema", f"theme must be a string, got {_type_name(level.theme)}", "$.theme")
    for code, p in ((SPAWN, level.spawn), (EXIT, level.exit)):
        _point(c, code, p[0], p[1], True)
    ens, its = level.enemies, level.items
    getx, gety, getk = _GETX, _GETY, _GETK
    try:
        fast = _fast_things(c, list(map(getx, ens)), list(map(gety, ens)), list(map(getk, ens)),
                            list(map(getx, its)), list(map(gety, its)), list(map(getk, its)), limits)
    except (AttributeError, TypeError):
        fast = False
    if fast:
        return c
    for code, seq in ((ENEMY, ens), (ITEM, its)):
        key = _NAMES[code]
        clean: list[tuple[str, int, int] | None] = []
        for i, t in enumerate(seq):
            kind, x, y = getattr(t, "kind", None), getattr(t, "x", None), getattr(t, "y", None)
            if not isinstance(kind, str) or type(x) is not int or type(y) is not int:
                c.fail("V0", "V0.schema", f"each of {key} needs a string kind and integer x, y; got {t!r:.80}", f"$.{key}[{i}]")
                clean.append(None)
            else:
                clean.append((kind, x, y))
        _things(c, code, clean, limits)
    return c


def spec_checks(c: Candidate, spec: LevelSpec) -> None:
    """V1 against the spec: size and theme."""
    if c.grid is not None:
        h, w = c.grid.shape
        if w != spec.width:
            c.fail("V1", "V1.spec_width", f"the map is {w} tiles wide but the spec asks for {spec.width}", "$.width")
        if h != spec.height:
            c.fail("V1", "V1.spec_height", f"the map is {h} tiles high but the spec asks for {spec.height}", "$.height")
    if c.theme is not None and c.theme in ALL_THEMES and c.theme != spec.theme:
        c.fail("V1", "V1.theme_mismatch", f"the theme is {c.theme!r} but the spec asks for {spec.theme!r}", "$.theme")


#: Number of known tile values (anything >= this in a grid is unknown).
N_TILES = _N_TILES
