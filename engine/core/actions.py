"""What a player (a person or a bot) can do in one turn.

Picking an item up is implicit: stepping onto it takes it.  Attacking is
implicit too: moving into an enemy attacks it ("bump to attack").

>>> Move.toward("ne")
Move(dx=1, dy=-1)
>>> Move(2, 0)
Traceback (most recent call last):
...
ValueError: Move(dx=2, dy=0): dx and dy must each be -1, 0 or 1 and not both 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The eight compass directions as ``(dx, dy)``; ``y`` grows downwards (row index).
DIRECTIONS: Final[dict[str, tuple[int, int]]] = {
    "n": (0, -1),
    "ne": (1, -1),
    "e": (1, 0),
    "se": (1, 1),
    "s": (0, 1),
    "sw": (-1, 1),
    "w": (-1, 0),
    "nw": (-1, -1),
}


@dataclass(frozen=True, slots=True)
class Move:
    """Step one tile in one of eight directions; into an enemy it is an attack."""

    dx: int
    dy: int

    def __post_init__(self) -> None:
        if self.dx not in (-1, 0, 1) or self.dy not in (-1, 0, 1) or (self.dx, self.dy) == (0, 0):
            raise ValueError(
                f"Move(dx={self.dx}, dy={self.dy}): dx and dy must each be -1, 0 or 1 and not both 0"
            )

    @classmethod
    def toward(cls, direction: str) -> Move:
        """``Move.toward("sw")``; the names are the keys of :data:`DIRECTIONS`."""
        try:
            return cls(*DIRECTIONS[direction])
        except KeyError:
            raise ValueError(
                f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}"
            ) from None


@dataclass(frozen=True, slots=True)
class Wait:
    """Let a turn pass (enemies act; slow regeneration ticks)."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the level now.  ``reason`` is recorded ("player", "max_turns", ...)."""

    reason: str = "player"


Action = Move | Wait | Quit
