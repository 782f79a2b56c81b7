"""Levels and tiles as pictures with Pillow and NumPy only: no window, no arcade.

The evaluation report, the rating server, docs and the arcade renderer all
draw with these, so anything may import this package that may import
``engine.core`` (``tests/test_layers.py``); ``engine.render`` (arcade) builds
on it.

* :mod:`engine.picture.tiles` -- ``Tileset``: the tile pictures by role, theme and kind.
* :mod:`engine.picture.level` -- ``render_level_image`` / ``render_level_png``.
"""

from __future__ import annotations

from engine.picture.level import render_level_image, render_level_png, terrain_pixels, terrain_stack
from engine.picture.tiles import Tileset, TilesetError, default_tile_dir

__all__ = [
    "Tileset",
    "TilesetError",
    "default_tile_dir",
    "render_level_image",
    "render_level_png",
    "terrain_pixels",
    "terrain_stack",
]
