"""The level's terrain as one texture, drawn as one quad, with fog of war composed into it.

Drawing thousands of terrain sprites every frame costs a software renderer
(Mesa llvmpipe, what a machine without a GPU uses) most of its frame: every
sprite goes through the vertex and geometry stages even when it is off
screen, and every pixel samples a texture.  The terrain never changes while a
level is played, so a :class:`TileLayer` keeps it in one texture the size of
the level and the frame draws that texture as one quad in world coordinates.
The camera's matrices come from arcade's ``WindowBlock`` uniform block, so the
quad scrolls and zooms like the sprites do, and the GPU clips it to what the
camera sees: one texture read per screen pixel, no per-tile work.

Fog of war lives in the texture itself: a tile in view holds its picture, a
remembered tile the dimmed one, a tile never seen the background colour.  The
texture is opaque, so the quad is drawn without blending, and a frame where
it fills the whole view (:meth:`TileLayer.covers`) need not clear the window.  When a turn changes the field
of view, only the rectangle of tiles that changed is composed with NumPy
(from the theme's tile pictures, :class:`TerrainTiles`) and uploaded; frames
without a turn upload nothing.  A new level gets a new layer: nothing of the
last level's map can show.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.render.arcade_import import arcade
from arcade.gl import BufferDescription

from engine.core.content import Tile
from engine.core.level import Level
from engine.render.errors import RenderError
from engine.picture import terrain_stack
from engine.picture.tiles import Tileset

#: Fog state of a tile, as stored in the fog arrays.
UNSEEN, SEEN, VISIBLE = 0, 1, 2
#: Tint of a tile that was seen before but is not in view now.
REMEMBERED = (96, 96, 124, 255)
IN_VIEW = (255, 255, 255, 255)
#: What a tile never seen shows, and what the window is cleared to (the views' background).
BACKGROUND = (8, 6, 12, 255)

_VERTEX_SHADER = """
#version 330
uniform WindowBlock {
    mat4 projection;
    mat4 view;
} window;
in vec2 in_vert;
in vec2 in_uv;
out vec2 v_uv;
void main() {
    gl_Position = window.projection * window.view * vec4(in_vert, 0.0, 1.0);
    v_uv = in_uv;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform sampler2D terrain;
in vec2 v_uv;
out vec4 f_color;
void main() {
    f_color = texture(terrain, v_uv);
}
"""

_programs: dict[int, Any] = {}


def _program(ctx: Any) -> Any:
    """One shader program per GL context (arcade has one context per window)."""
    prog = _programs.get(id(ctx))
    if prog is None or prog.ctx is not ctx:
        prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        prog["terrain"] = 0
        _programs[id(ctx)] = prog
    return prog


class TerrainTiles:
    """A theme's terrain pictures, as drawn in view and as remembered, over a background colour.

    ``lit`` and ``dim`` are ``(len(Tile), px, px, 4)`` uint8 stacks indexed by
    :class:`~engine.core.content.Tile`: the tile pictures laid over
    ``background`` (so they are opaque), untouched and tinted
    :data:`REMEMBERED`.  ``unseen`` is one tile of ``background``.  Kept per
    theme by the :class:`~engine.render.sprites.TextureCache`.
    """

    def __init__(self, tileset: Tileset, theme: str, background: tuple[int, int, int, int] = BACKGROUND) -> None:
        self.tile_px = px = tileset.tile_px
        pictures = terrain_stack(tileset, theme).astype(np.float32)
        bg = np.array(background[:3], dtype=np.float32)
        alpha = pictures[..., 3:4] / 255.0
        tint = np.array(REMEMBERED[:3], dtype=np.float32) / 255.0
        self.lit = _opaque(pictures[..., :3] * alpha + bg * (1.0 - alpha))
        self.dim = _opaque(pictures[..., :3] * tint * alpha + bg * (1.0 - alpha))
        self.unseen = np.broadcast_to(np.array([*background[:3], 255], dtype=np.uint8), (px, px, 4))


def _opaque(rgb: np.ndarray) -> np.ndarray:
    out = np.full((*rgb.shape[:-1], 4), 255, dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def fits(level: Level, tile_px: int, ctx: Any) -> bool:
    """Whether the level's terrain fits in one texture of this GL (llvmpipe: 16384 pixels a side)."""
    h, w = level.grid.shape
    return max(w, h) * tile_px <= ctx.info.MAX_TEXTURE_SIZE


class TileLayer:
    """Terrain and fog of war of one level: one texture, one quad, one draw call.

    ``set_fog(state)`` takes the ``[y, x]`` array of :data:`UNSEEN` /
    :data:`SEEN` / :data:`VISIBLE` and re-composes and uploads only the
    rectangle of tiles that changed.
    """

    def __init__(self, level: Level, tiles: TerrainTiles, ctx: Any | None = None) -> None:
        self.ctx = ctx if ctx is not None else arcade.get_window().ctx
        self.level = level
        self.tiles = tiles
        self._grid = np.clip(level.grid, 0, len(Tile) - 1)
        px = self.tiles.tile_px
        h, w = level.grid.shape
        self.width, self.height = w * px, h * px
        if not fits(level, px, self.ctx):
            raise RenderError(
                f"level {level.name!r} is {self.width}x{self.height} pixels, more than this GL's largest "
                f"texture ({self.ctx.info.MAX_TEXTURE_SIZE}); draw it with terrain='sprites' or smaller tiles"
            )
        self.fog = np.zeros((h, w), dtype=np.uint8)
        # Everything starts unseen: the background colour, opaque.
        unseen = np.broadcast_to(tiles.unseen[0, 0], (self.height, self.width, 4))
        self.texture = self.ctx.texture((self.width, self.height), components=4,
                                        data=np.ascontiguousarray(unseen).tobytes(),
                                        filter=(self.ctx.NEAREST, self.ctx.NEAREST))
        self.fog_writes = 0  #: uploads of part of the texture (one per turn that changed the fog)
        self._program = _program(self.ctx)
        quad = array("f", [
            0.0, self.height, 0.0, 1.0,
            0.0, 0.0, 0.0, 0.0,
            self.width, self.height, 1.0, 1.0,
            self.width, 0.0, 1.0, 0.0,
        ])
        self._geometry = self.ctx.geometry(
            [BufferDescription(self.ctx.buffer(data=quad), "2f 2f", ["in_vert", "in_uv"])],
            mode=self.ctx.TRIANGLE_STRIP,
        )

    def set_fog(self, state: NDArray[np.uint8]) -> int:
        """Match the fog to ``state``; returns how many tiles changed (0: nothing uploaded)."""
        changed = state != self.fog
        if not changed.any():
            return 0
        rows = np.flatnonzero(changed.any(axis=1))
        cols = np.flatnonzero(changed.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        self.fog[y0:y1, x0:x1] = region = state[y0:y1, x0:x1]
        px = self.tiles.tile_px
        out = np.empty((y1 - y0, x1 - x0, px, px, 4), dtype=np.uint8)
        out[...] = self.tiles.unseen
        grid = self._grid[y0:y1, x0:x1]
        lit, seen = region == VISIBLE, region == SEEN
        out[lit] = self.tiles.lit[grid[lit]]
        out[seen] = self.tiles.dim[grid[seen]]
        # Tiles back into rows of pixels; GL's row 0 is the bottom of the map.
        pixels = out.transpose(0, 2, 1, 3, 4).reshape((y1 - y0) * px, (x1 - x0) * px, 4)[::-1]
        gl_y = (self.fog.shape[0] - y1) * px
        self.texture.write(np.ascontiguousarray(pixels).tobytes(),
                           viewport=(x0 * px, gl_y, (x1 - x0) * px, (y1 - y0) * px))
        self.fog_writes += 1
        return int(np.count_nonzero(changed))

    def covers(self, camera: Any) -> bool:
        """Whether the layer fills everything ``camera`` shows (then the window needs no clearing)."""
        vp = camera.viewport
        left, bottom, *_ = camera.unproject((vp.left, vp.bottom))
        right, top, *_ = camera.unproject((vp.right, vp.top))
        slack = 0.25 / camera.zoom  # a quarter of a screen pixel: pixel centres are still inside
        return (min(left, right) >= -slack and min(bottom, top) >= -slack
                and max(left, right) <= self.width + slack and max(bottom, top) <= self.height + slack)

    def draw(self) -> None:
        """One opaque quad: no blending needed, every pixel it covers is written."""
        self.texture.use(0)
        with self.ctx.enabled_only():
            self._geometry.render(self._program)
