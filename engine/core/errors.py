"""Exceptions raised by the engine (a leaf module: imports nothing of ours)."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class SpecError(EngineError, ValueError):
    """A :class:`~engine.core.level.LevelSpec` field is missing, of the wrong type or out of range.

    ``field`` names the field (``"width"``); the message says the allowed range.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"LevelSpec.{field}: {message}")
        self.field = field


class LevelFormatError(EngineError, ValueError):
    """A level cannot be turned into the in-memory model (ragged rows, unknown tiles...).

    ``where`` is a JSON path such as ``$.rows[3]``.  The validator reports the
    same problems as gate failures instead of raising; this error is for code
    that asked for a ``Level`` and must not get a broken one.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


class LevelSourceError(EngineError):
    """The level source could not deliver a level; the game shows this, it never freezes."""
