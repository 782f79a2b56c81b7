"""What one level draws: terrain and fog once per level, things and actors synced each turn.

The terrain is a :class:`~engine.render.tile_layer.TileLayer` by default: the
whole map composed once into one texture and drawn as one quad, with fog of
war as a per-tile tint texture that is written only where it changed.  The
things on the floor (exit, items) and the actors are two small
:class:`arcade.SpriteList` batches.  So a frame costs three draw calls and no
per-tile work, however big the level is.

``terrain="sprites"`` keeps the older path, one sprite per tile in a third
``SpriteList`` with fog as the sprites' tint; the benchmarks time it as the
baseline, and it needs no texture as large as the level.

Fog of war: tiles in view are drawn as they are, remembered tiles dimmed,
unseen tiles not at all; the work per turn is proportional to the tiles whose
state changed, never to the level's size.

World coordinates: tile ``(x, y)`` of the grid (``y`` down) has its centre at
``(x + 0.5, height - y - 0.5) * tile_px`` (``y`` up, as arcade draws).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from engine.render.arcade_import import arcade
import numpy as np
from PIL import Image

from engine.core.content import Tile
from engine.core.level import Level
from engine.render.tile_layer import IN_VIEW, REMEMBERED, SEEN, UNSEEN, VISIBLE, TerrainTiles, TileLayer, fits
from engine.picture.tiles import Tileset

log = logging.getLogger(__name__)

__all__ = ["IN_VIEW", "REMEMBERED", "LevelSprites", "TextureCache", "fog_state"]

_UNSEEN, _SEEN, _VISIBLE = UNSEEN, SEEN, VISIBLE
Terrain = Literal["layer", "sprites"]
_FOG_NAMES = {UNSEEN: "unseen", SEEN: "remembered", VISIBLE: "visible"}


def fog_state(visible: np.ndarray, explored: np.ndarray) -> np.ndarray:
    """``[y, x]`` uint8 of UNSEEN / SEEN / VISIBLE from the game's boolean arrays."""
    state = explored.astype(np.uint8)  # SEEN == 1
    state[visible] = VISIBLE
    return state


class TextureCache:
    """One :class:`arcade.Texture` per tile picture and one :class:`TerrainTiles` per theme, shared by every level."""

    def __init__(self, tileset: Tileset) -> None:
        self.tileset = tileset
        self._by_id: dict[int, arcade.Texture] = {}
        self._terrain: dict[str, TerrainTiles] = {}

    def terrain(self, theme: str) -> TerrainTiles:
        """The theme's terrain pictures, lit and dimmed, for :class:`TileLayer`."""
        tiles = self._terrain.get(theme)
        if tiles is None:
            tiles = self._terrain[theme] = TerrainTiles(self.tileset, theme)
        return tiles

    def get(self, image: Image.Image) -> arcade.Texture:
        tex = self._by_id.get(id(image))
        if tex is None:
            tex = arcade.Texture(image, hash=f"forge-tile-{id(image)}-{self.tileset.tile_px}")
            self._by_id[id(image)] = tex
        return tex


class LevelSprites:
    """The drawable state of one level.  Build once per level; call :meth:`sync` after a turn.

    ``terrain="layer"`` (default) draws the map as one texture with the fog
    composed in (:class:`~engine.render.tile_layer.TileLayer`);
    ``terrain="sprites"`` as one sprite per tile (the benchmark baseline).
    """

    def __init__(self, level: Level, textures: TextureCache, *, terrain: Terrain = "layer") -> None:
        if terrain not in ("layer", "sprites"):
            raise ValueError(f"terrain must be 'layer' or 'sprites', got {terrain!r}")
        self.level = level
        self.textures = textures
        self.terrain_mode = terrain
        ts = textures.tileset
        self.tile_px = px = ts.tile_px
        h, w = level.grid.shape
        self.world_width, self.world_height = w * px, h * px
        self._fog = np.zeros((h, w), dtype=np.uint8)

        self.layer: TileLayer | None = None
        self.terrain: arcade.SpriteList | None = None
        if terrain == "layer" and not fits(level, px, arcade.get_window().ctx):
            log.warning("level %r is too large for one texture (%dx%d pixels); drawing its tiles as sprites",
                        level.name, w * px, h * px)
            terrain = self.terrain_mode = "sprites"
        if terrain == "layer":
            self.layer = TileLayer(level, textures.terrain(level.theme))
        else:
            self.terrain = arcade.SpriteList(capacity=w * h)
            tex = {int(t): textures.get(ts.terrain(level.theme, t)) for t in Tile}
            for y in range(h):
                for x in range(w):
                    sprite = arcade.Sprite(tex[int(min(level.grid[y, x], len(Tile) - 1))])
                    sprite.position = self.center(x, y)
                    sprite.visible = False
                    self.terrain.append(sprite)

        self.things = arcade.SpriteList()
        self.exit_sprite = self._sprite(ts.exit(level.theme), level.exit)
        self.things.append(self.exit_sprite)
        self._item_sprites: dict[tuple[str, int, int], arcade.Sprite] = {}

        self.actors = arcade.SpriteList()
        self._enemy_sprites: dict[int, arcade.Sprite] = {}
        self.player_sprite = self._sprite(ts.player(), level.spawn)
        self.actors.append(self.player_sprite)

    # -- geometry -----------------------------------------------------------------

    def center(self, x: int, y: int) -> tuple[float, float]:
        px = self.tile_px
        return ((x + 0.5) * px, (self.level.height - y - 0.5) * px)

    def _sprite(self, image: Image.Image, at: tuple[int, int]) -> arcade.Sprite:
        sprite = arcade.Sprite(self.textures.get(image))
        sprite.position = self.center(*at)
        return sprite

    def fog_at(self, x: int, y: int) -> str:
        """How tile ``(x, y)`` is drawn now: ``"visible"``, ``"remembered"`` or ``"unseen"``."""
        return _FOG_NAMES[int(self._fog[y, x])]

    # -- per turn -----------------------------------------------------------------

    def sync(self, game: Any, *, reveal: bool = False) -> None:
        """Match the sprites to ``game`` (player, enemies, items, visible/explored).

        ``reveal`` draws the whole level as if in view (screenshots, previews).
        """
        if reveal:
            visible = explored = np.ones(self.level.grid.shape, dtype=bool)
        else:
            visible = np.asarray(game.visible, dtype=bool)
            explored = np.asarray(game.explored, dtype=bool) | visible
        self._sync_fog(fog_state(visible, explored))

        ex, ey = self.level.exit
        self.exit_sprite.visible = bool(explored[ey, ex])
        _tint(self.exit_sprite, IN_VIEW if visible[ey, ex] else REMEMBERED)

        ts = self.textures.tileset
        present = set()
        for item in game.items:
            key = (item.kind, item.x, item.y)
            present.add(key)
            sprite = self._item_sprites.get(key)
            if sprite is None:
                sprite = self._item_sprites[key] = self._sprite(ts.item(item.kind), (item.x, item.y))
                self.things.append(sprite)
            # Items are remembered where they were seen, dimmed when out of view.
            sprite.visible = bool(explored[item.y, item.x])
            _tint(sprite, IN_VIEW if visible[item.y, item.x] else REMEMBERED)
        for key, sprite in self._item_sprites.items():
            if key not in present:
                sprite.visible = False

        alive = set()
        for n, enemy in enumerate(game.enemies):
            if enemy.hp <= 0:
                continue
            ident = getattr(enemy, "ident", n)
            alive.add(ident)
            sprite = self._enemy_sprites.get(ident)
            if sprite is None:
                sprite = self._enemy_sprites[ident] = self._sprite(ts.enemy(enemy.kind), (enemy.x, enemy.y))
                self.actors.insert(0, sprite)  # the player is drawn last, on top
            pos = self.center(enemy.x, enemy.y)
            if sprite.position != pos:
                sprite.position = pos
            sprite.visible = bool(visible[enemy.y, enemy.x])  # enemies only while in view
        for ident, sprite in self._enemy_sprites.items():
            if ident not in alive:
                sprite.visible = False

        pos = self.center(game.player.x, game.player.y)
        if self.player_sprite.position != pos:
            self.player_sprite.position = pos

    def _sync_fog(self, state: np.ndarray) -> None:
        if self.layer is not None:
            self.layer.set_fog(state)
            self._fog = self.layer.fog
            return
        changed = np.flatnonzero(state != self._fog)
        if changed.size == 0:
            return
        flat = state.ravel()
        sprites = self.terrain
        for i in changed.tolist():
            sprite = sprites[i]
            s = flat[i]
            if s == _UNSEEN:
                sprite.visible = False
            else:
                sprite.visible = True
                sprite.color = IN_VIEW if s == _VISIBLE else REMEMBERED
        self._fog = state

    def reveal_all(self) -> None:
        """Show every tile as if in view (previews, screenshots of a whole level)."""
        self._sync_fog(np.full(self.level.grid.shape, VISIBLE, dtype=np.uint8))

    def covers(self, camera: Any) -> bool:
        """Whether the terrain alone fills what ``camera`` shows (the window then needs no clearing)."""
        return self.layer is not None and self.layer.covers(camera)

    def draw(self) -> None:
        if self.layer is not None:
            self.layer.draw()
        else:
            self.terrain.draw(pixelated=True)
        self.things.draw(pixelated=True)
        self.actors.draw(pixelated=True)


def _tint(sprite: arcade.Sprite, colour: tuple[int, int, int, int]) -> None:
    """Set a sprite's colour only when it differs (each change re-uploads the sprite's data)."""
    if tuple(sprite.color) != colour:
        sprite.color = colour
