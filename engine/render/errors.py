"""Exceptions raised by the renderer (a leaf module)."""

from __future__ import annotations

from engine.core.errors import EngineError


class RenderError(EngineError):
    """Base class of errors raised on purpose by ``engine.render``."""


# TilesetError lives with the tiles in engine.picture (PIL only, importable without arcade).
