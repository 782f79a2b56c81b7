"""Level specs and levels: the wire format (msgspec) and the in-memory model (NumPy).

Grids are ``uint8`` arrays indexed ``[y, x]`` everywhere in this project: row
``y`` of the wire format's ``rows`` is ``grid[y]``, and a point ``(x, y)`` is
the tile ``grid[y, x]``.  Values are :class:`~engine.core.content.Tile`.

>>> spec = LevelSpec(width=16, height=12, difficulty=3, enemies=2, items=1, theme="crypt")
>>> spec.to_json()
b'{"width":16,"height":12,"difficulty":3,"enemies":2,"items":1,"theme":"crypt"}'
>>> LevelSpec.from_json('{"width":8,"height":12,"difficulty":3,"enemies":2,"items":1,"theme":"crypt"}')
Traceback (most recent call last):
...
engine.core.errors.SpecError: LevelSpec.width: must be an integer in 16..64, got 8
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from engine.core.content import (
    ALL_THEMES,
    CHAR_LOOKUP,
    ENEMY_KINDS,
    EXIT_GLYPH,
    ITEM_KINDS,
    SPAWN_GLYPH,
    TILE_BYTES,
)
from engine.core.errors import LevelFormatError, SpecError

#: Inclusive ranges of each numeric spec field (the contract in DESIGN.md).
SPEC_RANGES: Final[dict[str, tuple[int, int]]] = {
    "width": (16, 64),
    "height": (12, 48),
    "difficulty": (1, 10),
    "enemies": (0, 30),
    "items": (0, 20),
}


class LevelSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a game asks the generator for.  Every field is checked on creation."""

    width: int
    height: int
    difficulty: int
    enemies: int
    items: int
    theme: str

    def __post_init__(self) -> None:
        for name, (lo, hi) in SPEC_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise SpecError(name, f"must be an integer in {lo}..{hi}, got {value!r}")
        if self.theme not in ALL_THEMES:
            raise SpecError(
                "theme", f"must be one of {', '.join(ALL_THEMES)}, got {self.theme!r}"
            )

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_json(cls, data: str | bytes) -> LevelSpec:
        """Decode a spec, raising :class:`SpecError` naming the bad field (or a key given twice)."""
        try:
            spec = msgspec.json.decode(data, type=cls)
        except SpecError:
            raise
        except msgspec.ValidationError as exc:
            raise _spec_error_from(exc) from None
        except msgspec.DecodeError as exc:
            raise SpecError("<json>", f"not valid JSON: {exc}") from None
        _refuse_duplicate_keys(data)
        return spec

    @classmethod
    def from_dict(cls, data: Any) -> LevelSpec:
        try:
            return msgspec.convert(data, type=cls)
        except SpecError:
            raise
        except msgspec.ValidationError as exc:
            raise _spec_error_from(exc) from None


class DuplicateKey(Exception):
    """A JSON object names ``key`` twice (raised by :func:`pairs_once`; the spec and level parsers refuse it)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def pairs_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` that raises :class:`DuplicateKey` where msgspec would keep the last.

    >>> import json
    >>> json.loads('{"a": 1, "a": 2}', object_pairs_hook=pairs_once)
    Traceback (most recent call last):
    engine.core.level.DuplicateKey: a
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _refuse_duplicate_keys(data: str | bytes) -> None:
    """A spec that names a key twice is refused (msgspec keeps the last), as the level parser does.

    A decoded spec has exactly six keys, so text with exactly six ``":`` has no
    duplicate; anything else (spacing, a repeat) is checked by the json module.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b'":') == len(LevelSpec.__struct_fields__):
        return
    import json

    try:
        json.loads(raw, object_pairs_hook=pairs_once)
    except DuplicateKey as dup:
        key = dup.key
        raise SpecError(key, f"the key {key!r} appears twice in the spec; give each field once") from None
    except (ValueError, RecursionError):
        pass  # msgspec accepted the text; a dialect difference is not a duplicate


def _spec_error_from(exc: msgspec.ValidationError) -> SpecError:
    text = str(exc)
    # msgspec says "... - at `$.width`"; __post_init__ errors keep our own text.
    if text.startswith("LevelSpec."):
        field = text.split(":", 1)[0].removeprefix("LevelSpec.")
        return SpecError(field, text.split(": ", 1)[1].split(" - at ")[0])
    if "`$." in text:
        field = text.rsplit("`$.", 1)[-1].rstrip("`")
    elif text.startswith(("Object missing required field `", "Object contains unknown field `")):
        field = text.split("`")[1]  # msgspec names the field between backticks
    else:
        field = "<object>"
    if text.startswith("Object missing required field"):
        lo_hi = SPEC_RANGES.get(field)
        text = f"missing; expected an integer in {lo_hi[0]}..{lo_hi[1]}" if lo_hi else f"{text}"
    elif text.startswith("Object contains unknown field"):
        text = f"unknown field; a spec has only {', '.join(LevelSpec.__struct_fields__)}"
    return SpecError(field, text)


# --------------------------------------------------------------------------- wire


class Point(msgspec.Struct, frozen=True):
    x: int
    y: int


class Placed(msgspec.Struct, frozen=True):
    """An enemy or item on the map."""

    kind: str
    x: int
    y: int


class LevelDoc(msgspec.Struct, forbid_unknown_fields=False):
    """A level as JSON, exactly the contract's shape.  Nothing here is checked:
    decoding only guarantees types; the validator judges the content."""

    name: str
    width: int
    height: int
    rows: list[str]
    spawn: Point
    exit: Point
    enemies: list[Placed]
    items: list[Placed]
    theme: str


# ------------------------------------------------------------------------ memory


class Level:
    """A level in memory: a ``uint8`` grid ``[y, x]`` plus what stands on it.

    Instances compare equal when every field, grid included, is equal.  The
    grid is made read-only so a level can be shared between threads safely.
    """

    __slots__ = ("name", "grid", "spawn", "exit", "enemies", "items", "theme")

    def __init__(
        self,
        *,
        name: str,
        grid: NDArray[np.uint8],
        spawn: tuple[int, int],
        exit: tuple[int, int],
        enemies: list[Placed] | tuple[Placed, ...] = (),
        items: list[Placed] | tuple[Placed, ...] = (),
        theme: str,
    ) -> None:
        grid = np.asarray(grid, dtype=np.uint8)
        if grid.ndim != 2:
            raise LevelFormatError("$.rows", f"grid must be 2-D, got shape {grid.shape}")
        grid = grid.copy()
        grid.flags.writeable = False
        self.name = name
        self.grid: NDArray[np.uint8] = grid
        self.spawn = (int(spawn[0]), int(spawn[1]))
        self.exit = (int(exit[0]), int(exit[1]))
        self.enemies: tuple[Placed, ...] = tuple(enemies)
        self.items: tuple[Placed, ...] = tuple(items)
        self.theme = theme

    @property
    def width(self) -> int:
        return int(self.grid.shape[1])

    @property
    def height(self) -> int:
        return int(self.grid.shape[0])

    # -- conversions -------------------------------------------------------

    @classmethod
    def from_doc(cls, doc: LevelDoc) -> Level:
        """Build the in-memory level; raises :class:`LevelFormatError` on a shape problem.

        Only shape is checked here (rectangular rows, known tiles, declared
        size); whether the level is *good* is the validator's job.
        """
        return cls(
            name=doc.name,
            grid=rows_to_grid(doc.rows, doc.width, doc.height),
            spawn=(doc.spawn.x, doc.spawn.y),
            exit=(doc.exit.x, doc.exit.y),
            enemies=list(doc.enemies),
            items=list(doc.items),
            theme=doc.theme,
        )

    def to_doc(self) -> LevelDoc:
        return LevelDoc(
            name=self.name,
            width=self.width,
            height=self.height,
            rows=grid_to_rows(self.grid),
            spawn=Point(*self.spawn),
            exit=Point(*self.exit),
            enemies=list(self.enemies),
            items=list(self.items),
            theme=self.theme,
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> Level:
        try:
            doc = msgspec.json.decode(data, type=LevelDoc)
        except msgspec.ValidationError as exc:
            raise LevelFormatError(_path_of(exc), str(exc)) from None
        except msgspec.DecodeError as exc:
            raise LevelFormatError("$", f"not valid JSON: {exc}") from None
        return cls.from_doc(doc)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.to_doc())

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self.to_doc())

    # -- views -------------------------------------------------------------

    def picture(self) -> str:
        """ASCII picture: terrain with ``@`` spawn, ``>`` exit, enemy and item glyphs."""
        canvas = TILE_BYTES[self.grid].copy()
        h, w = canvas.shape

        def put(x: int, y: int, glyph: str) -> None:
            if 0 <= x < w and 0 <= y < h:
                canvas[y, x] = ord(glyph)

        for it in self.items:
            put(it.x, it.y, ITEM_KINDS[it.kind].glyph if it.kind in ITEM_KINDS else "*")
        for en in self.enemies:
            put(en.x, en.y, ENEMY_KINDS[en.kind].glyph if en.kind in ENEMY_KINDS else "E")
        put(*self.exit, EXIT_GLYPH)
        put(*self.spawn, SPAWN_GLYPH)
        return "\n".join(row.tobytes().decode("ascii") for row in canvas)

    def __str__(self) -> str:
        return f"{self.name} ({self.theme}, {self.width}x{self.height})\n{self.picture()}"

    def __repr__(self) -> str:
        return (
            f"Level(name={self.name!r}, theme={self.theme!r}, size={self.width}x{self.height}, "
            f"enemies={len(self.enemies)}, items={len(self.items)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return (
            self.name == other.name
            and self.theme == other.theme
            and self.spawn == other.spawn
            and self.exit == other.exit
            and self.enemies == other.enemies
            and self.items == other.items
            and self.grid.shape == other.grid.shape
            and bool(np.array_equal(self.grid, other.grid))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type


def rows_to_grid(rows: list[str], width: int | None = None, height: int | None = None) -> NDArray[np.uint8]:
    """Decode wire rows into a grid, raising :class:`LevelFormatError` with the row at fault."""
    if not rows:
        raise LevelFormatError("$.rows", "no rows")
    if height is not None and len(rows) != height:
        raise LevelFormatError("$.rows", f"{len(rows)} rows but height is {height}")
    w = len(rows[0]) if width is None else width
    for y, row in enumerate(rows):
        if len(row) != w:
            raise LevelFormatError(f"$.rows[{y}]", f"row has {len(row)} tiles, expected {w}")
    try:
        raw = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        bad = next(y for y, r in enumerate(rows) if not r.isascii())
        raise LevelFormatError(f"$.rows[{bad}]", "row contains a non-ASCII character") from None
    grid = CHAR_LOOKUP[raw].reshape(len(rows), w)
    unknown = np.argwhere(grid == 255)
    if unknown.size:
        y, x = (int(v) for v in unknown[0])
        raise LevelFormatError(
            f"$.rows[{y}]", f"unknown tile {rows[y][x]!r} at ({x}, {y}); rows hold only '#', '.', '+'"
        )
    return grid


def grid_to_rows(grid: NDArray[np.uint8]) -> list[str]:
    chars = TILE_BYTES[grid]
    return [row.tobytes().decode("ascii") for row in chars]


def _path_of(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return text.rsplit(" - at ", 1)[1].strip("`") if " - at " in text else "$"
