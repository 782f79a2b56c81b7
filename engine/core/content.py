"""The game's content catalogue: tiles, themes, enemy and item kinds.

One table for everything that names a kind of thing, so the validator, the
generators, the rules and the renderer agree on the alphabet.  A game can
extend it (see ``docs/embedding.md``) before any level is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np


class Tile(IntEnum):
    """Terrain values stored in a level's ``uint8`` grid."""

    FLOOR = 0
    WALL = 1
    DOOR = 2  # an open doorway: walkable, drawn differently, blocks nothing


#: Wire character for each tile, and back.  Entities never appear in rows.
TILE_CHARS: Final[dict[Tile, str]] = {Tile.FLOOR: ".", Tile.WALL: "#", Tile.DOOR: "+"}
CHAR_TILES: Final[dict[str, Tile]] = {c: t for t, c in TILE_CHARS.items()}

#: Byte -> tile lookup (255 = unknown), so rows decode with one NumPy take.
CHAR_LOOKUP: Final[np.ndarray] = np.full(256, 255, dtype=np.uint8)
for _char, _tile in CHAR_TILES.items():
    CHAR_LOOKUP[ord(_char)] = int(_tile)
#: Glyph drawn for a grid value that is no tile (the validator keeps unknown glyphs as 255).
UNKNOWN_GLYPH: Final[str] = "?"
#: Grid value -> byte, for encoding rows and pictures.  Total over uint8: a grid
#: the validator built from a level with unknown glyphs still serialises (as '?').
TILE_BYTES: Final[np.ndarray] = np.full(256, ord(UNKNOWN_GLYPH), dtype=np.uint8)
for _tile, _char in TILE_CHARS.items():
    TILE_BYTES[int(_tile)] = ord(_char)
#: Tiles an actor may stand on.
WALKABLE: Final[np.ndarray] = np.array([True, False, True], dtype=bool)


class Behaviour(IntEnum):
    """How an enemy kind acts (the rules core implements each)."""

    CHASER = 0  # paths to the player once seen, never forgets
    WANDERER = 1  # drifts at random, attacks when adjacent
    GUARD = 2  # holds position until the player is seen, then chases


@dataclass(frozen=True, slots=True)
class EnemyKind:
    name: str
    glyph: str
    behaviour: Behaviour
    hp: int
    attack: int
    themes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemKind:
    name: str
    glyph: str
    themes: tuple[str, ...]


ALL_THEMES: Final[tuple[str, ...]] = ("crypt", "cave", "fortress", "sewer")

#: Layout style each theme expects: rooms-and-corridors or caves.
THEME_LAYOUT: Final[dict[str, str]] = {
    "crypt": "rooms",
    "cave": "caves",
    "fortress": "rooms",
    "sewer": "caves",
}

ENEMY_KINDS: Final[dict[str, EnemyKind]] = {
    k.name: k
    for k in (
        EnemyKind("rat", "r", Behaviour.WANDERER, 3, 1, ("cave", "sewer", "crypt")),
        EnemyKind("bat", "b", Behaviour.WANDERER, 2, 1, ("cave", "crypt")),
        EnemyKind("skeleton", "s", Behaviour.GUARD, 6, 2, ("crypt", "fortress")),
        EnemyKind("zombie", "z", Behaviour.CHASER, 8, 2, ("crypt",)),
        EnemyKind("goblin", "g", Behaviour.CHASER, 5, 2, ("cave", "fortress")),
        EnemyKind("spider", "x", Behaviour.GUARD, 4, 3, ("cave", "sewer")),
        EnemyKind("slime", "j", Behaviour.WANDERER, 6, 1, ("sewer", "cave")),
        EnemyKind("knight", "k", Behaviour.GUARD, 10, 3, ("fortress",)),
        EnemyKind("orc", "o", Behaviour.CHASER, 9, 3, ("fortress", "cave")),
    )
}

ITEM_KINDS: Final[dict[str, ItemKind]] = {
    k.name: k
    for k in (
        ItemKind("potion", "!", ALL_THEMES),
        ItemKind("treasure", "$", ALL_THEMES),
        ItemKind("scroll", "?", ("crypt", "fortress")),
        ItemKind("food", "%", ("cave", "sewer", "fortress")),
    )
}

SPAWN_GLYPH: Final = "@"
EXIT_GLYPH: Final = ">"


def theme_enemy_kinds(theme: str) -> tuple[str, ...]:
    """Enemy kinds that belong to ``theme``, in catalogue order.

    >>> theme_enemy_kinds("fortress")
    ('skeleton', 'goblin', 'knight', 'orc')
    """
    return tuple(k.name for k in ENEMY_KINDS.values() if theme in k.themes)


def theme_item_kinds(theme: str) -> tuple[str, ...]:
    """Item kinds that belong to ``theme``, in catalogue order.

    >>> theme_item_kinds("cave")
    ('potion', 'treasure', 'food')
    """
    return tuple(k.name for k in ITEM_KINDS.values() if theme in k.themes)
