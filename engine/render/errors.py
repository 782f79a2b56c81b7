"""Exceptions raised by the renderer (a leaf module)."""

from __future__ import annotations

from engine.core.errors import EngineError


class RenderError(EngineError):
    """Base class of errors raised on purpose by ``engine.render``."""


class TilesetError(RenderError):
    """The tile pictures are missing or unusable; the message says which and how to fix it."""
