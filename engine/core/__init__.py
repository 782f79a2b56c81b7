"""Headless rules core.  Never imports arcade: rules run fast without a window."""

from engine.core.content import Tile
from engine.core.errors import EngineError, LevelFormatError, LevelSourceError, SpecError
from engine.core.level import Level, LevelDoc, LevelSpec, Placed, Point

__all__ = [
    "EngineError",
    "Level",
    "LevelDoc",
    "LevelFormatError",
    "LevelSourceError",
    "LevelSpec",
    "Placed",
    "Point",
    "SpecError",
    "Tile",
]
