"""Things that live on a level while it is played: actors (player, enemies) and items.

These are plain mutable records; :class:`~engine.core.game.Game` owns them and
the renderer reads them.  Positions are ``(x, y)`` like the level's spawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from engine.core.content import ENEMY_KINDS, Behaviour


class GameStatus(StrEnum):
    """Where a level stands.  Anything but ``PLAYING`` is final."""

    PLAYING = "playing"
    WON = "won"
    DEAD = "dead"
    QUIT = "quit"


@dataclass(slots=True)
class Actor:
    """The player or an enemy.

    ``alert`` counts down the turns an enemy still remembers the player after
    losing sight of them; ``target`` is where it last saw them.  ``home`` is
    where a guard returns to.
    """

    kind: str
    x: int
    y: int
    hp: int
    max_hp: int
    attack: int
    behaviour: Behaviour | None = None  #: ``None`` for the player
    home: tuple[int, int] = (0, 0)
    alert: int = 0
    target: tuple[int, int] | None = None
    ident: int = 0  #: stable index in the level's enemy list (``-1`` for the player)

    @property
    def pos(self) -> tuple[int, int]:
        return (self.x, self.y)

    @property
    def alive(self) -> bool:
        return self.hp > 0

    @classmethod
    def enemy(cls, kind: str, x: int, y: int, ident: int) -> Actor:
        """An enemy of a catalogue kind (``engine.core.content.ENEMY_KINDS``)."""
        try:
            k = ENEMY_KINDS[kind]
        except KeyError:
            raise ValueError(
                f"unknown enemy kind {kind!r} at ({x}, {y}); known: {', '.join(ENEMY_KINDS)}"
            ) from None
        return cls(kind, x, y, k.hp, k.hp, k.attack, k.behaviour, home=(x, y), ident=ident)


@dataclass(slots=True)
class Item:
    """An item lying on the floor; it disappears when picked up."""

    kind: str
    x: int
    y: int

    @property
    def pos(self) -> tuple[int, int]:
        return (self.x, self.y)


@dataclass(slots=True)
class PlayerStats:
    """Running totals for one level, kept by the game (telemetry carries the same facts)."""

    damage_dealt: int = 0
    damage_taken: int = 0
    kills: int = 0
    gold: int = 0
    items: int = 0
    min_hp: int = 0
    engaged: set[int] = field(default_factory=set)  #: enemy idents that fought the player
