"""Sprites for one level: terrain built once, things and actors synced each turn.

Everything is drawn through three :class:`arcade.SpriteList` batches (terrain,
things on the floor, actors), so a frame costs three draw calls whatever the
level size.  Fog of war is the terrain sprites' tint: tiles in view are drawn
as they are, remembered tiles dimmed, unseen tiles not at all.  Only tiles
whose fog state changed are touched on a turn.

World coordinates: tile ``(x, y)`` of the grid (``y`` down) has its centre at
``(x + 0.5, height - y - 0.5) * tile_px`` (``y`` up, as arcade draws).
"""

from __future__ import annotations

from typing import Any

from engine.render.arcade_import import arcade
import numpy as np
from PIL import Image

from engine.core.content import Tile
from engine.core.level import Level
from engine.render.tiles import Tileset

#: Tint of a tile that was seen before but is not in view now.
REMEMBERED = (96, 96, 124, 255)
IN_VIEW = (255, 255, 255, 255)
_UNSEEN, _SEEN, _VISIBLE = 0, 1, 2


class TextureCache:
    """One :class:`arcade.Texture` per tile picture, shared by every level."""

    def __init__(self, tileset: Tileset) -> None:
        self.tileset = tileset
        self._by_id: dict[int, arcade.Texture] = {}

    def get(self, image: Image.Image) -> arcade.Texture:
        tex = self._by_id.get(id(image))
        if tex is None:
            tex = arcade.Texture(image, hash=f"forge-tile-{id(image)}-{self.tileset.tile_px}")
            self._by_id[id(image)] = tex
        return tex


class LevelSprites:
    """The drawable state of one level.  Build once per level; call :meth:`sync` after a turn."""

    def __init__(self, level: Level, textures: TextureCache) -> None:
        self.level = level
        self.textures = textures
        ts = textures.tileset
        self.tile_px = px = ts.tile_px
        h, w = level.grid.shape
        self.world_width, self.world_height = w * px, h * px

        self.terrain = arcade.SpriteList(capacity=w * h)
        tex = {int(t): textures.get(ts.terrain(level.theme, t)) for t in Tile}
        for y in range(h):
            for x in range(w):
                sprite = arcade.Sprite(tex[int(min(level.grid[y, x], len(Tile) - 1))])
                sprite.position = self.center(x, y)
                sprite.visible = False
                self.terrain.append(sprite)
        self._fog = np.zeros((h, w), dtype=np.uint8)

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
        self._sync_fog(visible, explored)

        ex, ey = self.level.exit
        self.exit_sprite.visible = bool(explored[ey, ex])
        self.exit_sprite.color = IN_VIEW if visible[ey, ex] else REMEMBERED

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
            sprite.color = IN_VIEW if visible[item.y, item.x] else REMEMBERED
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
            sprite.position = self.center(enemy.x, enemy.y)
            sprite.visible = bool(visible[enemy.y, enemy.x])  # enemies only while in view
        for ident, sprite in self._enemy_sprites.items():
            if ident not in alive:
                sprite.visible = False

        self.player_sprite.position = self.center(game.player.x, game.player.y)

    def _sync_fog(self, visible: np.ndarray, explored: np.ndarray) -> None:
        state = np.where(visible, _VISIBLE, np.where(explored, _SEEN, _UNSEEN)).astype(np.uint8)
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
        for sprite in self.terrain:
            sprite.visible = True
            sprite.color = IN_VIEW
        self._fog[...] = _VISIBLE

    def draw(self) -> None:
        self.terrain.draw(pixelated=True)
        self.things.draw(pixelated=True)
        self.actors.draw(pixelated=True)
