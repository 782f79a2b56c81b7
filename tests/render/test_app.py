"""The sample game's window flow and its headless screenshot."""

from __future__ import annotations

import arcade
import numpy as np
from PIL import Image

from engine.core.entities import GameStatus
from engine.core.session import Session
from engine.render.views import EndView, GameView, TitleView
from games.sample_dungeon.app import DungeonApp, screenshot
from games.sample_dungeon.sources import open_source


def _shot(tmp_path, window, seed, source="procedural"):
    out = screenshot(tmp_path / f"shot-{seed}.png", seed=seed, source=source)
    with Image.open(out) as img:
        assert img.size == (window.width, window.height)
        return np.asarray(img.convert("RGB")).astype(int)


def test_screenshot_is_a_readable_level(tmp_path, window):
    img = _shot(tmp_path, window, seed=3)
    assert img.std() > 20  # not blank
    # the map shows at least a dark floor colour and a light wall colour in quantity
    grey = img.mean(axis=2)
    map_area = grey[40:-110]
    assert (map_area > 100).mean() > 0.05 and ((map_area > 25) & (map_area < 70)).mean() > 0.05


def test_screenshots_of_two_levels_differ(tmp_path, window):
    a, b = _shot(tmp_path, window, seed=1), _shot(tmp_path, window, seed=2)
    assert np.abs(a - b).mean() > 3


def test_app_flow_title_play_death(window, monkeypatch):
    opened = open_source("samples")
    session = Session(opened.source, None, seed=0, retry_after_death=True)
    app = DungeonApp(window, session, levels=2)
    monkeypatch.setattr(window, "close", lambda: None)  # the shared window outlives the app
    app.show_title()
    assert isinstance(app.view, TitleView)
    session.wait_until_ready(10)
    app.view.on_key_press(arcade.key.ENTER, 0)
    assert isinstance(app.view, GameView)
    game = app.view.game
    turn = game.turn
    app.view.on_key_press(arcade.key.PERIOD, 0)
    assert game.turn == turn + 1
    game._finish(GameStatus.DEAD)  # a death without arranging a fight
    app.level_over(game)
    assert isinstance(app.view, EndView) and not app.view.won
    app.view.on_key_press(arcade.key.R, 0)  # replays the same level
    assert isinstance(app.view, GameView) and app.view.game.level == game.level
    app.view.on_key_press(arcade.key.ESCAPE, 0)
    opened.close()


class _CountingSource:
    """The sample levels, remembering each session it was told about (as the generator reloads routing)."""

    def __init__(self) -> None:
        self.inner = open_source("samples").source
        self.sessions: list[str] = []

    def start_session(self, session_id: str) -> None:
        self.sessions.append(session_id)

    def get_level(self, spec, *, seed):
        return self.inner.get_level(spec, seed=seed)


def test_play_again_after_victory_starts_a_new_session(window, monkeypatch):
    from engine.render.views import LoadingView
    from games.sample_dungeon.app import PlaySessions

    source = _CountingSource()
    trained = []
    plays = PlaySessions(source, None, seed=0, train=lambda: trained.append(True))
    first = plays.new_session()
    app = DungeonApp(window, first, levels=1, new_session=plays.new_session)
    monkeypatch.setattr(window, "close", lambda: None)
    first.wait_until_ready(10)
    app.advance()
    game = app.view.game
    game._finish(GameStatus.WON)
    app.level_over(game)
    assert isinstance(app.view, EndView) and app.view.won
    app.view.on_key_press(arcade.key.R, 0)  # play again
    assert app.session is not first and first._closed and app.completed == 0
    assert isinstance(app.view, (GameView, LoadingView))
    assert len(trained) == 2  # at launch and again before the second play session
    app.session.wait_until_ready(10)
    assert source.sessions == [first.session_id, app.session.session_id]  # routing reloaded for it
    app.close()


class _GatedSource:
    """Serves the sample levels only once the test opens the gate; fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        import threading

        self.gate = threading.Event()
        self.fail = fail
        self.inner = open_source("samples").source

    def start_session(self, session_id: str) -> None:
        pass

    def get_level(self, spec, *, seed):
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("teacher model unreachable")
        return self.inner.get_level(spec, seed=seed)


def test_slow_source_shows_generating_overlay_then_plays(window, monkeypatch):
    from engine.render.views import LoadingView

    source = _GatedSource()
    session = Session(source, None, seed=0)
    app = DungeonApp(window, session)
    monkeypatch.setattr(window, "close", lambda: None)
    app.advance()
    assert isinstance(app.view, LoadingView)
    app.view.on_update(0.1)
    assert isinstance(app.view, LoadingView)
    source.gate.set()
    session.wait_until_ready(10)
    app.view.on_update(0.1)
    assert isinstance(app.view, GameView)
    app.close()


def test_failing_source_shows_the_error(window, monkeypatch):
    from engine.render.views import ErrorView

    source = _GatedSource(fail=True)
    source.gate.set()
    session = Session(source, None, seed=0)
    app = DungeonApp(window, session)
    monkeypatch.setattr(window, "close", lambda: None)
    session.wait_until_ready(10)
    app.advance()
    assert isinstance(app.view, ErrorView)
    assert "teacher model unreachable" in app.view.lines
    app.close()
