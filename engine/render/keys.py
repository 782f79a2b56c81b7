"""Keyboard bindings: which key is which move, wait, quit or retry.

Arrows and WASD move in four directions; the numeric keypad and the vi keys
(``h j k l`` and ``y u b n``) move in eight; ``.``, ``5`` on the keypad or
space waits; ``Esc`` quits; ``R`` retries.  A game may pass its own table.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from engine.render.arcade_import import arcade

k = arcade.key

from engine.core.actions import Action, Move, Wait


class Command(StrEnum):
    """Keys that talk to the application rather than to the rules."""

    QUIT = "quit"
    RETRY = "retry"
    START = "start"


#: key symbol -> (dx, dy) with y growing downwards, like the level grid.
MOVE_KEYS: Final[dict[int, tuple[int, int]]] = {
    k.UP: (0, -1), k.DOWN: (0, 1), k.LEFT: (-1, 0), k.RIGHT: (1, 0),
    k.W: (0, -1), k.S: (0, 1), k.A: (-1, 0), k.D: (1, 0),
    k.K: (0, -1), k.J: (0, 1), k.H: (-1, 0), k.L: (1, 0),
    k.Y: (-1, -1), k.U: (1, -1), k.B: (-1, 1), k.N: (1, 1),
    k.NUM_8: (0, -1), k.NUM_2: (0, 1), k.NUM_4: (-1, 0), k.NUM_6: (1, 0),
    k.NUM_7: (-1, -1), k.NUM_9: (1, -1), k.NUM_1: (-1, 1), k.NUM_3: (1, 1),
    k.NUM_UP: (0, -1), k.NUM_DOWN: (0, 1), k.NUM_LEFT: (-1, 0), k.NUM_RIGHT: (1, 0),
    k.NUM_HOME: (-1, -1), k.NUM_PAGE_UP: (1, -1), k.NUM_END: (-1, 1), k.NUM_PAGE_DOWN: (1, 1),
}
WAIT_KEYS: Final[frozenset[int]] = frozenset({k.PERIOD, k.NUM_5, k.NUM_DECIMAL, k.SPACE, k.NUM_BEGIN})
COMMAND_KEYS: Final[dict[int, Command]] = {k.ESCAPE: Command.QUIT, k.Q: Command.QUIT, k.R: Command.RETRY}


def action_for_key(symbol: int, modifiers: int = 0) -> Action | Command | None:
    """The action or command a key press means, or ``None`` for an unbound key.

    >>> action_for_key(k.NUM_9)
    Move(dx=1, dy=-1)
    >>> action_for_key(k.PERIOD)
    Wait()
    >>> action_for_key(k.ESCAPE)
    <Command.QUIT: 'quit'>
    """
    if symbol in MOVE_KEYS:
        return Move(*MOVE_KEYS[symbol])
    if symbol in WAIT_KEYS:
        return Wait()
    return COMMAND_KEYS.get(symbol)
