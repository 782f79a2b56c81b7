"""The compact text form a student model reads and writes, per call site.

A student serves one call site, so it does not need byllm's long prompt: it
learns ``prompt -> completion`` pairs in a compact form that any runtime
(this package's own, or a GGUF/llama.cpp server) can serve.

Generic sites
    prompt ``<args as compact JSON, keys sorted>\\t``, completion ``<result as compact JSON>\\n``.
    The arguments' keys are sorted at every depth, so a call reads the same
    to the student whatever order its arguments were recorded, exported or
    passed in (a dataset's held-out arguments come back from JSON sorted; the
    program passes them in declaration order).  The answer keeps the
    teacher's order, which is the output schema's.

The level site (``design_level``)
    The structure a decoder needs is put *in the token stream*, so a standard
    runtime sees it too and our own runtime can mask logits position by
    position (see :mod:`generator.local.decoding`)::

        L 20x12 d3 e2 i1 crypt
        00020011####################
        01020011#..@....#..........#
        ...

    The prompt is the spec header line.  Each completion line is one grid row:
    a 7-digit prefix ``YY EE II K`` (row index, enemies still to place, items
    still to place, and ``K`` = 2·spawn-missing + exit-missing) followed by the
    row's tiles with entities drawn inline (``@`` spawn, ``>`` exit, each
    enemy/item kind's catalogue glyph; the tile under an entity decodes as
    floor, so a thing standing on a door loses the door).  The counts
    let the model (and a grammar) know what is left without counting itself.

>>> spec = {"width": 16, "height": 12, "difficulty": 3, "enemies": 2, "items": 1, "theme": "crypt"}
>>> encode_prompt("level", {"spec": spec})
'L 16x12 d3 e2 i1 crypt\\n'
>>> encode_prompt("demo:f#1", {"a": 1})
'{"a":1}\\t'
>>> decode_result("demo:f#1", '{"a":1}\\t{"ok":true}\\n')
{'ok': True}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from engine.core.content import ENEMY_KINDS, EXIT_GLYPH, ITEM_KINDS, SPAWN_GLYPH
from generator.errors import GeneratorError

__all__ = [
    "CodecError",
    "ENEMY_GLYPHS",
    "ITEM_GLYPHS",
    "LEVEL_FORM",
    "ROW_PAD",
    "ROW_PREFIX_LEN",
    "decode_result",
    "encode_completion",
    "encode_example",
    "encode_prompt",
    "is_level_site",
    "level_header",
    "row_prefix",
    "spec_from_args",
]

#: The site name used for the level form when no real call-site id is known.
LEVEL_FORM: Final = "level"
#: Characters in each level row's prefix ``YYEEIIK``.
ROW_PREFIX_LEN: Final = 7
#: Fills a row out to a fixed stride (``row_stride``): every row line then has the same length,
#: so the tile above is always the same number of tokens back, at any width.
ROW_PAD: Final = " "
#: Separator that ends a generic prompt (compact JSON never contains a raw tab).
GENERIC_SEP: Final = "\t"

ENEMY_GLYPHS: Final[dict[str, str]] = {k.glyph: k.name for k in ENEMY_KINDS.values()}
ITEM_GLYPHS: Final[dict[str, str]] = {k.glyph: k.name for k in ITEM_KINDS.values()}
_GLYPH_OF: Final[dict[str, str]] = {
    **{k.name: k.glyph for k in ENEMY_KINDS.values()},
    **{k.name: k.glyph for k in ITEM_KINDS.values()},
}
_SPEC_KEYS: Final = ("width", "height", "difficulty", "enemies", "items", "theme")
_HEADER_RE: Final = re.compile(r"L (\d+)x(\d+) d(\d+) e(\d+) i(\d+) ([a-z_]+)\n")


class CodecError(GeneratorError, ValueError):
    """Text that is not in the compact form; the message says where it broke."""


# ----------------------------------------------------------------------- sites


def is_level_site(site: str) -> bool:
    """True when ``site`` is the level site (``design_level``), served in the grid form.

    >>> is_level_site("jac.levels:design_level#00000000"), is_level_site("x:y#1")
    (True, False)
    """
    if site == LEVEL_FORM:
        return True
    head = site.rpartition("#")[0] or site
    return head.rpartition(":")[2].rpartition(".")[2] == "design_level"


def spec_from_args(args: dict[str, Any]) -> dict[str, Any]:
    """Find the level spec in a call's arguments: the args themselves or one dict-valued arg."""
    if all(k in args for k in _SPEC_KEYS):
        return {k: args[k] for k in _SPEC_KEYS}
    found = [v for v in args.values() if isinstance(v, dict) and all(k in v for k in _SPEC_KEYS)]
    if len(found) != 1:
        raise CodecError(
            f"level site args {sorted(args)}: expected a spec ({', '.join(_SPEC_KEYS)}) "
            "directly or as exactly one argument"
        )
    return {k: found[0][k] for k in _SPEC_KEYS}


# --------------------------------------------------------------------- helpers


def level_header(spec: dict[str, Any]) -> str:
    """The level prompt line for a spec dict."""
    return (
        f"L {int(spec['width'])}x{int(spec['height'])} d{int(spec['difficulty'])} "
        f"e{int(spec['enemies'])} i{int(spec['items'])} {spec['theme']}\n"
    )


def parse_level_header(text: str) -> tuple[dict[str, Any], int]:
    """Parse the header at the start of ``text``: ``(spec dict, characters consumed)``."""
    m = _HEADER_RE.match(text)
    if m is None:
        raise CodecError(f"level text: header line {text[:40]!r} is not 'L WxH dN eN iN theme'")
    w, h, d, e, i, theme = m.groups()
    spec = {"width": int(w), "height": int(h), "difficulty": int(d), "enemies": int(e),
            "items": int(i), "theme": theme}
    return spec, m.end()


def row_prefix(y: int, enemies_left: int, items_left: int, spawn_missing: bool, exit_missing: bool) -> str:
    """The 7-character prefix of row ``y``: ``YYEEIIK``.

    >>> row_prefix(3, 2, 0, True, False)
    '0302002'
    """
    k = 2 * int(spawn_missing) + int(exit_missing)
    return f"{y:02d}{max(enemies_left, 0):02d}{max(items_left, 0):02d}{k}"


# ---------------------------------------------------------------------- encode


def encode_prompt(site: str, args: dict[str, Any]) -> str:
    """The prompt the student continues for a call with ``args``."""
    if is_level_site(site):
        return level_header(spec_from_args(args))
    return _compact_json(args, sort_keys=True) + GENERIC_SEP


def encode_completion(site: str, args: dict[str, Any], result: dict[str, Any], *,
                      row_stride: int | None = None) -> str:
    """What the student should write after :func:`encode_prompt`.

    ``row_stride`` (level site only): pad every row's tiles with :data:`ROW_PAD`
    to this many characters, so all row lines have one length whatever the width.
    """
    if is_level_site(site):
        return _encode_level_rows(spec_from_args(args), result, row_stride)
    return _compact_json(result) + "\n"


def encode_example(site: str, args: dict[str, Any], result: dict[str, Any], *,
                   row_stride: int | None = None) -> str:
    """One training text: prompt followed by completion (the trainer adds EOS)."""
    return encode_prompt(site, args) + encode_completion(site, args, result, row_stride=row_stride)


def _compact_json(value: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def _encode_level_rows(spec: dict[str, Any], level: dict[str, Any], row_stride: int | None = None) -> str:
    rows = [list(r) for r in level["rows"]]
    height, width = len(rows), len(rows[0]) if rows else 0
    if row_stride is not None and row_stride < width:
        raise CodecError(f"level: row stride {row_stride} is narrower than the {width}-wide grid")
    pad = ROW_PAD * ((row_stride or width) - width)
    # Which row each thing is on, in drawing order, so the counters can be kept per row.
    placed: dict[tuple[int, int], str] = {}

    def put(point: dict[str, Any] | tuple[int, int], glyph: str, what: str) -> None:
        x, y = (point["x"], point["y"]) if isinstance(point, dict) else point
        if not (0 <= y < height and 0 <= x < width):
            raise CodecError(f"level: {what} at ({x}, {y}) is outside the {width}x{height} grid")
        if (x, y) in placed:
            raise CodecError(f"level: {what} at ({x}, {y}) shares its tile with another thing")
        if rows[y][x] == "#":
            raise CodecError(f"level: {what} at ({x}, {y}) stands on a wall; the grid form needs floor")
        # A thing on a door ('+') is written over it: the decoded level has floor there
        # (still walkable, so validity is unchanged; the only lossy case).
        placed[(x, y)] = glyph
        rows[y][x] = glyph

    put(level["spawn"], SPAWN_GLYPH, "spawn")
    put(level["exit"], EXIT_GLYPH, "exit")
    for group, table in (("enemies", ENEMY_KINDS), ("items", ITEM_KINDS)):
        for n, thing in enumerate(level.get(group, [])):
            kind = thing["kind"]
            if kind not in table:
                raise CodecError(f"level: $.{group}[{n}].kind {kind!r} is not in the catalogue")
            put(thing, _GLYPH_OF[kind], f"$.{group}[{n}]")

    enemies_left, items_left = int(spec["enemies"]), int(spec["items"])
    spawn_missing = exit_missing = True
    lines = []
    for y, row in enumerate(rows):
        lines.append(row_prefix(y, enemies_left, items_left, spawn_missing, exit_missing) + "".join(row) + pad + "\n")
        for ch in row:
            if ch in ENEMY_GLYPHS:
                enemies_left -= 1
            elif ch in ITEM_GLYPHS:
                items_left -= 1
            elif ch == SPAWN_GLYPH:
                spawn_missing = False
            elif ch == EXIT_GLYPH:
                exit_missing = False
    return "".join(lines)


# ---------------------------------------------------------------------- decode


def decode_result(site: str, text: str, *, args: dict[str, Any] | None = None,
                  name: str = "student") -> dict[str, Any]:
    """The result dict in ``text`` (a full example, or a completion with ``args``).

    For the level site this is the wire ``Level`` dict (``name``, ``width``,
    ``height``, ``rows``, ``spawn``, ``exit``, ``enemies``, ``items``,
    ``theme``); raises :class:`CodecError` saying where the text breaks.
    Whether the level is *good* is the validator's job, not the codec's.
    """
    if is_level_site(site):
        return _decode_level(text, args, name)
    # Compact JSON never holds a raw tab or newline, so both split unambiguously.
    body = text.split(GENERIC_SEP, 1)[1] if GENERIC_SEP in text else text
    body = body.split("\n", 1)[0]
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise CodecError(f"{site}: result is not JSON ({exc.msg} at column {exc.colno}): {body[:60]!r}") from None
    if not isinstance(value, dict):
        raise CodecError(f"{site}: result is JSON {type(value).__name__}, expected an object")
    return value


@dataclass(frozen=True)
class _Parsed:
    rows: list[str]
    spawn: list[tuple[int, int]]
    exits: list[tuple[int, int]]
    enemies: list[dict[str, Any]]
    items: list[dict[str, Any]]


def _decode_level(text: str, args: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if text.startswith("L "):
        spec, start = parse_level_header(text)
        text = text[start:]
    elif args is not None:
        spec = spec_from_args(args)
    else:
        raise CodecError("level text: no header line and no args to take the spec from")
    width, height = int(spec["width"]), int(spec["height"])
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last row
    lines = lines[:height]
    parsed = _Parsed([], [], [], [], [])
    for y, line in enumerate(lines[:height]):
        body = line[ROW_PREFIX_LEN:].rstrip(ROW_PAD)  # a row stride's padding, if any
        if len(line) < ROW_PREFIX_LEN or not line[:ROW_PREFIX_LEN].isdigit():
            raise CodecError(f"level text: row {y} does not start with its {ROW_PREFIX_LEN}-digit prefix: {line[:12]!r}")
        if len(body) != width:
            raise CodecError(f"level text: row {y} has {len(body)} tiles, expected {width}")
        tiles = []
        for x, ch in enumerate(body):
            if ch in "#.+":
                tiles.append(ch)
                continue
            tiles.append(".")
            if ch == SPAWN_GLYPH:
                parsed.spawn.append((x, y))
            elif ch == EXIT_GLYPH:
                parsed.exits.append((x, y))
            elif ch in ENEMY_GLYPHS:
                parsed.enemies.append({"kind": ENEMY_GLYPHS[ch], "x": x, "y": y})
            elif ch in ITEM_GLYPHS:
                parsed.items.append({"kind": ITEM_GLYPHS[ch], "x": x, "y": y})
            else:
                raise CodecError(f"level text: unknown glyph {ch!r} at ({x}, {y})")
        parsed.rows.append("".join(tiles))
    if len(parsed.rows) < height:
        raise CodecError(f"level text: {len(parsed.rows)} row lines, expected {height}")
    for what, found in (("spawn '@'", parsed.spawn), ("exit '>'", parsed.exits)):
        if len(found) != 1:
            raise CodecError(f"level text: {len(found)} {what} glyphs, expected exactly 1")
    (sx, sy), (ex, ey) = parsed.spawn[0], parsed.exits[0]
    return {
        "name": name,
        "width": width,
        "height": height,
        "rows": parsed.rows,
        "spawn": {"x": sx, "y": sy},
        "exit": {"x": ex, "y": ey},
        "enemies": parsed.enemies,
        "items": parsed.items,
        "theme": spec["theme"],
    }
