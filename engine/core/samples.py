"""Small hand-made levels, written as ASCII pictures.

Used by tests, the benchmark and the embedding guide; they need no
generator.  :func:`level_from_ascii` reads the same glyphs
:meth:`Level.picture` writes (``@`` spawn, ``>`` exit, enemy and item glyphs
from the content catalogue; the tile under a glyph is floor).

>>> lvl = level_from_ascii('''
... #####
... #@.>#
... #####
... ''', name="tiny")
>>> lvl.spawn, lvl.exit, lvl.width
((1, 1), (3, 1), 5)
"""

from __future__ import annotations

from typing import Final

from engine.core.content import ENEMY_KINDS, EXIT_GLYPH, ITEM_KINDS, SPAWN_GLYPH, TILE_CHARS, Tile
from engine.core.errors import LevelFormatError
from engine.core.level import Level, Placed, rows_to_grid

_ENEMY_BY_GLYPH: Final = {k.glyph: k.name for k in ENEMY_KINDS.values()}
_ITEM_BY_GLYPH: Final = {k.glyph: k.name for k in ITEM_KINDS.values()}


def level_from_ascii(picture: str, *, name: str = "ascii", theme: str = "crypt") -> Level:
    """Build a :class:`Level` from a picture; raises :class:`LevelFormatError` naming the bad glyph."""
    lines = [ln for ln in picture.strip("\n").splitlines()]
    rows: list[str] = []
    spawn = exit_ = None
    enemies: list[Placed] = []
    items: list[Placed] = []
    floor = TILE_CHARS[Tile.FLOOR]
    for y, line in enumerate(lines):
        row = []
        for x, ch in enumerate(line):
            if ch == SPAWN_GLYPH:
                spawn = (x, y)
            elif ch == EXIT_GLYPH:
                exit_ = (x, y)
            elif ch in _ENEMY_BY_GLYPH:
                enemies.append(Placed(_ENEMY_BY_GLYPH[ch], x, y))
            elif ch in _ITEM_BY_GLYPH:
                items.append(Placed(_ITEM_BY_GLYPH[ch], x, y))
            else:
                row.append(ch)
                continue
            row.append(floor)
        rows.append("".join(row))
    if spawn is None or exit_ is None:
        raise LevelFormatError("$", f"picture needs one {SPAWN_GLYPH!r} (spawn) and one {EXIT_GLYPH!r} (exit)")
    return Level(name=name, grid=rows_to_grid(rows), spawn=spawn, exit=exit_,
                 enemies=enemies, items=items, theme=theme)


#: An empty room with the exit next to the spawn: nothing to do.
TRIVIAL: Final = """
################
#..............#
#..............#
#......@>......#
#..............#
#..............#
#..............#
#..............#
#..............#
#..............#
#..............#
################
"""

#: Rooms and corridors with a few enemies, a potion and some gold: a fair fight.
BALANCED: Final = """
##############################
#@....#.........#.....#......#
#.....#...r.....#..$..#......#
#.....+.........+.....#......#
#.....#.........#.....#...>..#
#.....#....!....#..s..+......#
###+###.........#.....#......#
#.....####+######.....#......#
#.....#.....#.....$...#......#
#..$..+..z..#.........####+###
#.....#.....+.....#...#......#
#.....#.....#.....#...#......#
#.....#.....#.....#...#......#
##############################
"""

#: A long road to a far exit, lined with orcs, knights and spiders.
BRUTAL: Final = """
##############################
#@...........................#
#............................#
######.##########.############
#.........o..o.k....o...o....#
#.......k....o....o....k...o.#
#....x....o....k....x....o...#
#..o....o....o....o....o..o..#
######.##########.#########..#
#............................#
#..o....k....o....k....o..>..#
##############################
"""


def sample_level(kind: str) -> Level:
    """``"trivial"``, ``"balanced"`` or ``"brutal"`` (see the module constants)."""
    pictures = {"trivial": (TRIVIAL, "crypt"), "balanced": (BALANCED, "crypt"), "brutal": (BRUTAL, "fortress")}
    try:
        picture, theme = pictures[kind]
    except KeyError:
        raise ValueError(f"unknown sample level {kind!r}; choose one of {', '.join(pictures)}") from None
    return level_from_ascii(picture, name=f"{kind} sample", theme=theme)
