"""The level's terrain as one cached texture, drawn as one quad, with fog of war per tile.

Drawing thousands of terrain sprites every frame costs a software renderer
(Mesa llvmpipe, what a machine without a GPU uses) most of its frame: every
sprite goes through the vertex and geometry stages even when it is off
screen.  The terrain never changes while a level is played, so it is composed
once per level with NumPy (the same code as :mod:`engine.render.picture`),
uploaded as one texture, and drawn as a single quad in world coordinates.
The camera's matrices come from arcade's ``WindowBlock`` uniform block, so the
quad scrolls and zooms like the sprites do, and the GPU clips it to what the
camera sees.

Fog of war is a second, tiny texture with one texel per tile (``width`` x
``height``): the tint a tile gets.  The fragment shader multiplies the tile's
colour by it, so a tile in view is drawn as it is, a remembered tile dimmed
and a tile never seen is fully transparent (the background shows).  When the
fog changes, only the rows and columns that hold changed tiles are written.

Terrain textures are kept by :class:`TileLayerCache` (owned by the
:class:`~engine.render.sprites.TextureCache`), keyed by the level's grid,
theme and tile size: replaying a level reuses its texture, a new level
builds a new one.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.render.arcade_import import arcade
from arcade.gl import BufferDescription

from engine.core.level import Level
from engine.render.picture import terrain_pixels
from engine.render.tiles import Tileset

#: Fog state of a tile, as stored in the fog arrays.
UNSEEN, SEEN, VISIBLE = 0, 1, 2
#: Tint of a tile that was seen before but is not in view now.
REMEMBERED = (96, 96, 124, 255)
IN_VIEW = (255, 255, 255, 255)
#: RGBA tint per fog state; unseen tiles get alpha 0, so nothing is drawn there.
FOG_TINTS = np.array([(0, 0, 0, 0), REMEMBERED, IN_VIEW], dtype=np.uint8)

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
uniform sampler2D fog;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec4 tint = texture(fog, v_uv);
    if (tint.a == 0.0) discard;  // never seen: leave the background
    f_color = texture(terrain, v_uv) * tint;
}
"""

_programs: dict[int, Any] = {}


def _program(ctx: Any) -> Any:
    """One shader program per GL context (arcade has one context per window)."""
    prog = _programs.get(id(ctx))
    if prog is None or prog.ctx is not ctx:
        prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        prog["terrain"] = 0
        prog["fog"] = 1
        _programs[id(ctx)] = prog
    return prog


def level_key(level: Level, tile_px: int) -> str:
    """What the terrain picture depends on: grid, theme and tile size."""
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(level.grid, dtype=np.uint8).tobytes())
    h.update(f"{level.grid.shape}|{level.theme}|{tile_px}".encode())
    return h.hexdigest()


class TileLayerCache:
    """Terrain textures of the last few levels (a retry or a replay reuses its level's texture)."""

    def __init__(self, tileset: Tileset, *, keep: int = 2) -> None:
        self.tileset = tileset
        self.keep = max(1, keep)
        self._textures: OrderedDict[str, Any] = OrderedDict()
        self.builds = 0  #: how many terrain textures were composed and uploaded

    def terrain_texture(self, level: Level, ctx: Any) -> Any:
        key = level_key(level, self.tileset.tile_px)
        tex = self._textures.get(key)
        if tex is not None and tex.ctx is ctx:
            self._textures.move_to_end(key)
            return tex
        pixels = terrain_pixels(level, self.tileset)
        h, w = pixels.shape[:2]
        if max(w, h) > ctx.info.MAX_TEXTURE_SIZE:
            from engine.render.errors import RenderError

            raise RenderError(
                f"level {level.name!r} is {w}x{h} pixels, more than this GL's largest texture "
                f"({ctx.info.MAX_TEXTURE_SIZE}); draw it with LevelSprites(..., terrain='sprites') or smaller tiles"
            )
        # GL rows start at the bottom; the picture's row 0 is the top of the map.
        tex = ctx.texture((w, h), components=4, data=np.ascontiguousarray(pixels[::-1]).tobytes(),
                          filter=(ctx.NEAREST, ctx.NEAREST))
        self.builds += 1
        self._textures[key] = tex
        while len(self._textures) > self.keep:
            self._textures.popitem(last=False)
        return tex


class TileLayer:
    """Terrain and fog of war of one level: one texture, one quad, one draw call.

    ``set_fog(state)`` takes the ``[y, x]`` array of :data:`UNSEEN` /
    :data:`SEEN` / :data:`VISIBLE` and uploads only the changed part.
    """

    def __init__(self, level: Level, cache: TileLayerCache, ctx: Any | None = None) -> None:
        self.ctx = ctx if ctx is not None else arcade.get_window().ctx
        self.level = level
        px = cache.tileset.tile_px
        h, w = level.grid.shape
        self.width, self.height = w * px, h * px
        self.texture = cache.terrain_texture(level, self.ctx)
        self.fog = np.zeros((h, w), dtype=np.uint8)
        self.fog_texture = self.ctx.texture((w, h), components=4, data=bytes(w * h * 4),
                                            filter=(self.ctx.NEAREST, self.ctx.NEAREST))
        self.fog_writes = 0  #: uploads of (part of) the fog texture, one per turn that changed it
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
        self.fog[y0:y1, x0:x1] = state[y0:y1, x0:x1]
        # Texture row 0 is the map's bottom row (y = height - 1).
        texels = FOG_TINTS[self.fog[y0:y1, x0:x1][::-1]]
        gl_y = self.fog.shape[0] - y1
        self.fog_texture.write(np.ascontiguousarray(texels).tobytes(), viewport=(x0, gl_y, x1 - x0, y1 - y0))
        self.fog_writes += 1
        return int(np.count_nonzero(changed))

    def draw(self) -> None:
        self.texture.use(0)
        self.fog_texture.use(1)
        self._geometry.render(self._program)
