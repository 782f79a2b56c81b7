"""A level as a picture, without a window: the game's own tiles composed with NumPy.

Used wherever a level must be shown but no game runs: the evaluation report,
docs, debugging.  It draws what the game draws at turn 0 with everything
revealed (terrain, exit, items, enemies, the player on the spawn).

>>> from engine.core.level import Level
>>> import numpy as np
>>> grid = np.ones((12, 16), dtype=np.uint8); grid[1:-1, 1:-1] = 0
>>> level = Level(name="box", grid=grid, spawn=(1, 1), exit=(14, 10), theme="crypt")
>>> render_level_image(level, tile_px=8).size
(128, 96)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.core.content import Tile
from engine.core.level import Level
from engine.picture.tiles import Tileset


def render_level_image(
    level: Level, *, tile_px: int = 16, tileset: Tileset | None = None
) -> Image.Image:
    """The level as an RGB image of ``width*tile_px`` by ``height*tile_px`` pixels."""
    tiles = tileset if tileset is not None else Tileset.load(tile_px=tile_px)
    px = tiles.tile_px
    canvas = terrain_pixels(level, tiles)[..., :3].copy()

    _paste(canvas, tiles.exit(level.theme), level.exit, px)
    for item in level.items:
        _paste(canvas, tiles.item(item.kind), (item.x, item.y), px)
    for enemy in level.enemies:
        _paste(canvas, tiles.enemy(enemy.kind), (enemy.x, enemy.y), px)
    _paste(canvas, tiles.player(), level.spawn, px)
    return Image.fromarray(canvas, "RGB")


def terrain_stack(tileset: Tileset, theme: str) -> np.ndarray:
    """The theme's terrain pictures as one ``(len(Tile), px, px, 4)`` uint8 RGBA array, indexed by :class:`Tile`.

    Indexing it with a grid (``stack[grid]``) gives every tile's picture;
    the window's tile layer (:mod:`engine.render.tile_layer`) does that for
    the tiles a turn changes.
    """
    return np.stack([np.asarray(tileset.terrain(theme, t).convert("RGBA")) for t in Tile], axis=0)


def terrain_pixels(level: Level, tileset: Tileset) -> np.ndarray:
    """The level's terrain laid out as one RGBA array, ``(height*px, width*px, 4)`` uint8, row 0 on top."""
    px = tileset.tile_px
    h, w = level.grid.shape
    grid = np.clip(level.grid, 0, len(Tile) - 1)
    return terrain_stack(tileset, level.theme)[grid].transpose(0, 2, 1, 3, 4).reshape(h * px, w * px, 4)


def render_level_png(
    level: Level, path: str | Path, *, tile_px: int = 16, tileset: Tileset | None = None
) -> Path:
    """Write :func:`render_level_image` to ``path`` (parent folders are created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    render_level_image(level, tile_px=tile_px, tileset=tileset).save(out, format="PNG")
    return out


def _paste(canvas: np.ndarray, sprite: Image.Image, at: tuple[int, int], px: int) -> None:
    """Alpha-blend one sprite onto the tile at ``(x, y)``; off-map positions are skipped."""
    x, y = at
    if not (0 <= y * px < canvas.shape[0] and 0 <= x * px < canvas.shape[1]):
        return
    rgba = np.asarray(sprite, dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    region = canvas[y * px : (y + 1) * px, x * px : (x + 1) * px]
    region[...] = (rgba[..., :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)
