"""The sample dungeon in a window: title -> play -> next level / game over / victory.

``run_window`` is what ``python -m games.sample_dungeon`` opens;
``screenshot`` is ``--screenshot FILE``: one level drawn headless to a PNG.
The flow lives in :class:`DungeonApp`; the screens are ``engine.render.views``.

Each play session (the first game, then every "play again" after a victory)
is a new engine :class:`Session` made by :class:`PlaySessions`.  Starting a
Session calls the source's ``start_session``, which for the generator facade
reloads settings and routing, so a model promoted by the background training
started between sessions (:class:`BackgroundTraining`) is used from the next
session on, without restarting the program.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.core.actions import Quit
from engine.core.errors import LevelSourceError
from engine.core.session import Session, derive_seed
from engine.core.source import LevelSource
from engine.core.telemetry import TelemetrySink
from engine.core.telemetry import JsonlSink, TeeSink
from games.sample_dungeon.sources import open_source

log = logging.getLogger(__name__)

TITLE = "Dungeon Forge"
DEFAULT_SIZE = (1024, 720)


def _arcade():
    """Import arcade lazily (headless when no display is there or it was asked for)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("ARCADE_HEADLESS", "1")
    from engine.render.arcade_import import arcade

    return arcade


def _data_root(data_dir: str | None) -> Path:
    from generator.paths import data_dir as resolve

    return Path(resolve(data_dir))


#: Level sources whose sessions can use a freshly trained model (the generator facade).
TRAINABLE_SOURCES = ("auto", "generator")


def _launch_training(data_dir: str) -> subprocess.Popen[bytes] | None:
    """Start ``python -m generator.train --if-needed`` detached; ``None`` (and a warning) if it cannot start."""
    try:
        from generator.training.background import launch_background

        return launch_background(data_dir)
    except Exception as exc:  # noqa: BLE001 - training is a bonus, play must go on
        log.warning("background training not started: %s", exc)
        return None


class BackgroundTraining:
    """Between play sessions: start the low-priority trainer, never two at once.

    The child trains only when enough new data has arrived and promotes only
    what passes its gates; the session after a promotion picks it up.  A
    child still running from the last session is left alone rather than
    joined by a second one competing for the same data and CPU.
    """

    def __init__(self, data_dir: str, launch: Callable[[str], Any] = _launch_training) -> None:
        self.data_dir = data_dir
        self._launch = launch
        self._child: Any = None
        self.started = 0

    def __call__(self) -> bool:
        """Start a trainer unless one is still running; returns whether one was started."""
        if self._child is not None and self._child.poll() is None:
            log.info("background training from an earlier session is still running; not starting another")
            return False
        self._child = self._launch(self.data_dir)
        self.started += self._child is not None
        return self._child is not None


def between_sessions_training(enabled: bool, source: str, data_dir: str) -> BackgroundTraining | None:
    """The trainer to start at each play session, or ``None`` when it is turned off or cannot help.

    ``enabled`` is the window's ``background_train`` (``--no-background-train``
    turns it off); only the generator facade ever serves a trained model.
    """
    return BackgroundTraining(data_dir) if enabled and source in TRAINABLE_SOURCES else None


class PlaySessions:
    """Makes one engine :class:`Session` per play session, starting training first when asked.

    A new Session is what makes a promotion count: its ``start`` calls the
    source's ``start_session`` (the generator facade reloads routing there).
    The first session plays ``seed``; later ones a seed derived from it, so
    "play again" brings new levels while a run stays reproducible.
    """

    def __init__(self, source: LevelSource, sink: TelemetrySink | None, *, seed: int = 0,
                 stamp: str | None = None, train: Callable[[], object] | None = None,
                 retry_after_death: bool = True) -> None:
        self.source = source
        self.sink = sink
        self.seed = seed
        self.retry_after_death = retry_after_death
        self.stamp = stamp or time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.train = train
        self.made = 0

    def new_session(self) -> Session:
        """Start training (if on) and a new Session, whose first level is made in the background at once."""
        if self.train is not None:
            self.train()
        n = self.made
        self.made += 1
        session = Session(self.source, self.sink, session_id=f"window-{self.seed}-{self.stamp}-{n}",
                          seed=self.seed if n == 0 else derive_seed(self.seed, n),
                          retry_after_death=self.retry_after_death)
        session.start()
        return session

    @classmethod
    def like(cls, session: Session) -> PlaySessions:
        """Sessions like ``session`` (same source and sink, no training); it counts as the first."""
        made = cls(session.source, session.sink, seed=session.seed, retry_after_death=session.retry_after_death)
        made.made = 1
        return made


class DungeonApp:
    """Wires play sessions to the views: what each screen leads to.

    ``session`` is the first play session; ``new_session`` makes the next one
    when the player plays again after a victory (default: a Session like the
    first, without training).
    """

    def __init__(self, window: Any, session: Session, *, levels: int = 5, zoom: float = 2.0,
                 on_close: Any = None, new_session: Callable[[], Session] | None = None) -> None:
        from engine.render.sprites import TextureCache
        from engine.picture.tiles import Tileset

        self.window = window
        self.session = session
        self.new_session = new_session or PlaySessions.like(session).new_session
        self.levels = levels
        self.zoom = zoom
        self.completed = 0
        self.deaths = 0
        self.textures = TextureCache(Tileset.load())
        self.view: Any = None
        self._on_close = on_close

    # -- screens -------------------------------------------------------------

    def show_title(self) -> None:
        from engine.render.views import TitleView

        self._show(TitleView(TITLE, [
            "A roguelike whose levels are written by a generator that teaches itself.",
            f"Reach the golden stairs on {self.levels} levels.",
        ], on_command=self.command, window=self.window))

    def advance(self) -> None:
        """Play the next level (or the same one after a death), waiting on screen if it is not made yet."""
        from engine.render.hud import LevelInfo
        from engine.render.views import ErrorView, GameView, LoadingView

        if not self.session.level_ready():
            background = self.view if isinstance(self.view, GameView) else None
            self._show(LoadingView(self.session.level_ready, self.advance, on_command=self.command,
                                   background=background, window=self.window))
            return
        try:
            game = self.session.next_game(timeout=0)
        except LevelSourceError as exc:
            log.error("%s", exc)
            self._show(ErrorView(str(exc), on_command=self.command, window=self.window))
            return
        sourced = self.session.current_level
        info = LevelInfo.from_sourced(sourced, depth=self.session.depth)
        self._show(GameView(game, info, self.textures, on_level_over=self.level_over,
                            on_command=self.command, zoom=self.zoom, window=self.window))

    def level_over(self, game: Any) -> None:
        from engine.render.views import EndView

        report = self.session.end_game(game)
        status = str(game.status)
        if status == "won":
            self.completed += 1
            if self.completed >= self.levels:
                self._show(EndView(won=True, lines=self._summary(), on_command=self.command,
                                   background=self.view, window=self.window))
            else:
                self.advance()
        elif status == "dead":
            self.deaths += 1
            lines = [f"Killed on depth {self.session.depth} after {game.turn} turns."]
            lines.append("R replays this level." if not report.final else "R goes on to a new level.")
            self._show(EndView(won=False, lines=lines, on_command=self.command, background=self.view,
                               window=self.window))
        else:
            self.close()

    def command(self, command: Any) -> None:
        from engine.render.keys import Command
        from engine.render.views import EndView, GameView

        if command == Command.QUIT:
            if isinstance(self.view, GameView) and self.view.playing:
                self.view.game.act(Quit("player"))
                self.session.end_game(self.view.game)
            self.close()
        elif command == Command.START:
            self.advance()
        elif command == Command.RETRY:
            if isinstance(self.view, EndView) and self.view.won:
                self.play_again()
            elif not isinstance(self.view, GameView):  # R during play is not a move: ignore it
                self.advance()

    def play_again(self) -> None:
        """After a victory: end this play session and start a new one (new levels, reloaded routing)."""
        self.session.close()
        self.session = self.new_session()
        self.completed = 0
        self.deaths = 0
        self.advance()

    def _summary(self) -> list[str]:
        return [f"{self.completed} levels cleared, {self.deaths} deaths.",
                f"Last level made by {self.session.current_level.backend if self.session.current_level else '?'}."]

    def _show(self, view: Any) -> None:
        self.view = view
        self.window.show_view(view)

    def close(self) -> None:
        self.session.close()
        if self._on_close is not None:
            self._on_close()
        self.window.close()


def run_window(*, seed: int = 0, data_dir: str | None = None, source: str = "auto", levels: int = 5,
               width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], zoom: float = 2.0,
               background_train: bool = True) -> None:
    """Open the game window and play until the player quits.

    Every play session (the first, and each "play again") is a new
    :class:`Session`, so the generator reloads its routing each time.  With
    ``background_train`` (the default) a low-priority
    ``python -m generator.train --if-needed`` starts at each play session,
    so what earlier sessions recorded can become a student that a *later*
    session uses.
    """
    arcade = _arcade()
    root = _data_root(data_dir)
    opened = open_source(source, data_dir=str(root))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    jsonl = JsonlSink(root / "runs" / f"telemetry-{stamp}-window-seed{seed}.jsonl")
    sink = TeeSink(jsonl, opened.store_sink) if opened.store_sink is not None else jsonl
    plays = PlaySessions(opened.source, sink, seed=seed, stamp=stamp,
                         train=between_sessions_training(background_train, source, str(root)))
    session = plays.new_session()  # the first level is made while the title is shown
    window = arcade.Window(width, height, TITLE, resizable=True)

    def on_close() -> None:
        sink.close()
        opened.close()

    app = DungeonApp(window, session, levels=levels, zoom=zoom, on_close=on_close, new_session=plays.new_session)
    app.show_title()
    try:
        arcade.run()
    finally:
        if not app.session._closed:  # window closed with the mouse: still flush telemetry
            app.session.close()
            on_close()


def screenshot(path: str | os.PathLike, *, seed: int = 0, data_dir: str | None = None, source: str = "auto",
               width: int = 960, height: int = 640, reveal: bool = True) -> Path:
    """Draw the first level of a session (seeded) headless and save it as a PNG; returns the path.

    With ``reveal`` (default) the whole level is shown and zoomed to fit, so
    walls, floor, player, enemies, items and the exit are all in the picture.
    Reuses the process's arcade window if there is one (arcade allows one).
    """
    os.environ.setdefault("ARCADE_HEADLESS", "1")
    arcade = _arcade()
    from engine.render.hud import LevelInfo
    from engine.render.sprites import TextureCache
    from engine.picture.tiles import Tileset
    from engine.render.views import GameView, fit_zoom

    opened = open_source(source, data_dir=str(_data_root(data_dir)))
    try:
        with Session(opened.source, None, session_id=f"screenshot-{seed}", seed=seed) as session:
            game = session.next_game()
            sourced = session.current_level
            try:
                window = arcade.get_window()
                owned = False
            except Exception:  # noqa: BLE001 - arcade raises its own "no window" error
                window = arcade.Window(width, height, TITLE, visible=False)
                owned = True
            try:
                textures = TextureCache(Tileset.load())
                level = game.level
                zoom = fit_zoom(level.width, level.height, textures.tileset.tile_px, window.width, window.height) \
                    if reveal else 2.0
                view = GameView(game, LevelInfo.from_sourced(sourced, depth=1), textures, zoom=zoom,
                                reveal=reveal, window=window)
                window.show_view(view)
                view.on_draw()
                image = arcade.get_image(0, 0, window.width, window.height)
            finally:
                if owned:
                    window.close()
            game.act(Quit("screenshot"))
            session.end_game(game)
    finally:
        opened.close()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(out, format="PNG")
    return out
