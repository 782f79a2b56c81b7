"""The cached tile layer: what the player sees matches the game, turn after turn and level after level."""

from __future__ import annotations

import arcade
import numpy as np

from engine.core.actions import Move
from engine.core.game import Game
from engine.core.level import Level
from engine.render.hud import LOG_LINES, LevelInfo
from engine.render.views import BACKGROUND, GameView

from .conftest import corridor_level


def _view(window, textures, level=None, **kw):
    level = level or corridor_level()
    game = Game(level, seed=1)
    view = GameView(game, LevelInfo(level.name, level.theme), textures, window=window, **kw)
    window.show_view(view)
    return view


def _frame(view, window) -> np.ndarray:
    view.on_update(1.0)  # the camera eases onto its target within a second
    view.on_draw()
    return np.asarray(arcade.get_image(0, 0, window.width, window.height).convert("RGB")).astype(int)


def _patch(view, img: np.ndarray, x: int, y: int) -> np.ndarray:
    """The 8x8 screen pixels around the centre of tile (x, y)."""
    sx, sy = view.camera.project(view.sprites.center(x, y))
    row = img.shape[0] - int(sy)  # images have row 0 on top, the screen has y = 0 at the bottom
    col = int(sx)
    return img[row - 4:row + 4, col - 4:col + 4]


def _is_background(patch: np.ndarray) -> bool:
    return bool(np.abs(patch - np.array(BACKGROUND[:3])).max() <= 8)


def test_fog_follows_the_player_through_the_door(window, textures):
    view = _view(window, textures)
    below, above = (12, 9), (4, 3)  # a floor tile in the lower room, one in the upper room
    img = _frame(view, window)
    assert _is_background(_patch(view, img, *below))  # not seen yet: nothing drawn
    lit = _patch(view, img, *above).mean()
    assert lit > 20

    for step in [(1, 1)] * 3 + [(1, 0)] * 4 + [(1, 1), (0, 1), (0, 1)]:  # to the door, then through it
        view.act(Move(*step))
    assert view.game.player.pos == (10, 8)
    img = _frame(view, window)
    assert view.sprites.fog_at(*below) == "visible" and view.sprites.fog_at(*above) == "remembered"
    assert not _is_background(_patch(view, img, *below))  # the lower room appeared
    dimmed = _patch(view, img, *above)
    assert not _is_background(dimmed) and dimmed.mean() < 0.7 * lit  # remembered: still drawn, darker


def test_tile_layer_looks_like_one_sprite_per_tile(window, textures):
    """The cached layer is a faster way to draw the same picture, fog included."""
    pictures = []
    for terrain in ("layer", "sprites"):
        view = _view(window, textures, terrain=terrain)
        for step in [(1, 1)] * 3 + [(1, 0)] * 4:
            view.act(Move(*step))
        pictures.append(_frame(view, window))
    layer, sprites = pictures
    assert layer.std() > 10
    assert np.abs(layer - sprites).max() <= 8  # same picture (up to the GL's dithering)


def test_each_level_shows_its_own_map(window, textures):
    level = corridor_level("crypt")
    first = _frame(_view(window, textures, level, reveal=True), window)
    # The same level again (a retry) looks the same.
    again = _frame(_view(window, textures, corridor_level("crypt"), reveal=True), window)
    assert np.abs(first - again).max() <= 8
    # Another map in the same window: the new wall shows, nothing of the last level's terrain stays.
    grid = level.grid.copy()
    grid[1:6, 5] = 1
    other = Level(name="Other Hall", grid=grid, spawn=level.spawn, exit=level.exit, theme="crypt")
    view = _view(window, textures, other, reveal=True)
    changed = _frame(view, window)
    assert np.abs(first - changed).mean() > 1
    wall = _patch(view, changed, 5, 3)
    floor = _patch(view, first, 5, 3)
    assert np.abs(wall - floor).mean() > 10
    # Another theme: another palette.
    cave = _frame(_view(window, textures, corridor_level("cave"), reveal=True), window)
    assert np.abs(first - cave).mean() > 3


def test_turns_upload_only_what_changed(window, textures):
    view = _view(window, textures)
    layer = view.sprites.layer
    writes = layer.fog_writes
    view.refresh()  # nothing happened: nothing to upload
    assert layer.fog_writes == writes
    view.act(Move(1, 0))
    assert layer.fog_writes == writes + 1


def test_hud_log_shows_the_last_messages_in_order(window, textures):
    view = _view(window, textures)
    for i in range(LOG_LINES + 3):
        view.game.say(f"message {i}")
        view.refresh()
        view.on_draw()
    shown = sorted(view.hud.log_texts, key=lambda t: -t.position[1])  # top line first
    assert [t.text for t in shown] == [f"message {i}" for i in range(3, LOG_LINES + 3)]


def test_a_level_too_large_for_one_texture_still_draws(window, textures, monkeypatch, caplog):
    import engine.render.sprites as sprites_module

    monkeypatch.setattr(sprites_module, "fits", lambda level, tile_px, ctx: False)  # as if the GL were tiny
    view = _view(window, textures)
    assert view.sprites.terrain_mode == "sprites" and "too large" in caplog.text
    img = _frame(view, window)
    assert not _is_background(_patch(view, img, 4, 3))


def test_frames_that_skip_clearing_leave_no_trace(window, textures):
    grid = np.ones((30, 40), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    big = Level(name="Big Hall", grid=grid, spawn=(20, 15), exit=(38, 28), theme="cave")
    view = _view(window, textures, big)
    view.on_update(1.0)
    assert view.sprites.covers(view.camera)  # the map fills the window: no clear needed
    window.ctx.screen.clear(color=(255, 0, 255, 255))  # what an old frame might have left
    view.on_draw()
    skipped = np.asarray(arcade.get_image(0, 0, window.width, window.height).convert("RGB")).astype(int)
    window.clear()
    view.on_draw()
    cleared = np.asarray(arcade.get_image(0, 0, window.width, window.height).convert("RGB")).astype(int)
    assert np.abs(skipped - cleared).max() <= 8
    # A small map does not fill the window: that frame clears first.
    small = _view(window, textures)
    small.on_update(1.0)
    assert not small.sprites.covers(small.camera)
