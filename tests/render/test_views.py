"""The play view drives the real rules core and draws what it says."""

from __future__ import annotations

import arcade
import numpy as np

from engine.core.actions import Move
from engine.core.game import Game
from engine.render.hud import LevelInfo
from engine.render.keys import Command, action_for_key
from engine.render.views import EndView, ErrorView, GameView, LoadingView

from .conftest import corridor_level


def _view(window, textures, level=None, **kw):
    level = level or corridor_level()
    game = Game(level, seed=1)
    view = GameView(game, LevelInfo(level.name, level.theme, 3, "procedural", "procedural-1"), textures, **kw)
    window.show_view(view)
    return view


def test_key_press_makes_the_game_act(window, textures):
    view = _view(window, textures)
    start = view.game.player.pos
    assert view.on_key_press(arcade.key.RIGHT, 0)
    assert view.game.player.pos == (start[0] + 1, start[1])
    assert view.game.turn == 1
    view.on_key_press(arcade.key.N, 0)  # vi key: south-east
    assert view.game.player.pos == (start[0] + 2, start[1] + 1)
    # the player's sprite followed
    assert view.sprites.player_sprite.position == view.sprites.center(*view.game.player.pos)


def test_keys_cover_eight_directions_and_wait():
    moves = {action_for_key(s) for s in (arcade.key.NUM_1, arcade.key.NUM_2, arcade.key.NUM_3, arcade.key.NUM_4,
                                          arcade.key.NUM_6, arcade.key.NUM_7, arcade.key.NUM_8, arcade.key.NUM_9)}
    assert len(moves) == 8
    assert {action_for_key(s) for s in "hjklyubn".encode()} == moves
    assert type(action_for_key(arcade.key.PERIOD)).__name__ == "Wait"


def test_hud_shows_hp_level_and_generator(window, textures):
    view = _view(window, textures)
    hp = view.game.player.hp
    assert view.hud.hp_text.text == f"HP {hp}/{view.game.player.max_hp}"
    assert "Test Hall" in view.hud.level_text.text and "Depth 3" in view.hud.level_text.text
    assert "procedural" in view.hud.source_text.text
    view.game.player.hp -= 4
    view.refresh()
    assert view.hud.hp_text.text == f"HP {hp - 4}/{view.game.player.max_hp}"


def test_fog_hides_the_unseen_and_dims_the_remembered(window, textures):
    view = _view(window, textures)
    assert view.sprites.fog_at(4, 9) == "unseen"  # other side of the dividing wall: not seen yet
    assert view.sprites.fog_at(2, 2) == "visible"
    enemy = view.sprites._enemy_sprites[0]
    assert not enemy.visible  # the rat is behind the wall


def test_reaching_the_exit_reports_level_over_once(window, textures):
    ended = []
    level = corridor_level()
    # a level whose exit is one step away
    from engine.core.level import Level

    near = Level(name="near", grid=level.grid, spawn=(2, 2), exit=(3, 3), theme="cave")
    view = _view(window, textures, near, on_level_over=ended.append)
    view.act(Move(1, 1))
    view.act(Move(1, 1))
    assert len(ended) == 1 and str(ended[0].status) == "won"


def test_escape_and_r_go_to_the_application(window, textures):
    seen = []
    view = _view(window, textures, on_command=seen.append)
    view.on_key_press(arcade.key.ESCAPE, 0)
    view.on_key_press(arcade.key.R, 0)
    assert seen == [Command.QUIT, Command.RETRY]
    end = EndView(won=False, lines=["Depth 3"], on_command=seen.append, window=window)
    end.on_key_press(arcade.key.R, 0)
    assert seen[-1] == Command.RETRY


def test_loading_view_waits_for_the_prefetch(window, textures):
    ready, started = [False], []
    view = LoadingView(lambda: ready[0], lambda: started.append(1), window=window)
    view.on_update(0.1)
    assert started == []
    ready[0] = True
    view.on_update(0.1)
    view.on_update(0.1)
    assert started == [1]


def test_views_draw_something(window, textures):
    view = _view(window, textures)
    for v in (view, ErrorView("backend 'llm' failed: no API key", on_command=lambda c: None, window=window),
              EndView(won=True, lines=["3 levels"], on_command=lambda c: None, background=view, window=window)):
        window.show_view(v)
        v.on_draw()
        img = np.asarray(arcade.get_image(0, 0, window.width, window.height))
        assert img[..., :3].std() > 5
