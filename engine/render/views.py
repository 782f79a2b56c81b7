"""One arcade ``View`` per screen: title, play, generating-next-level, end, error.

Views hold no game rules.  :class:`GameView` turns keys into actions for the
headless :class:`~engine.core.game.Game` and draws its state; what happens when
a level ends, or when the player asks to quit or retry, is decided by the
application through callbacks, so another game can reuse these screens with
its own flow (see ``games/sample_dungeon/app.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.render.arcade_import import arcade
from arcade.camera import Camera2D

from engine.core.actions import Action
from engine.render.hud import FONT, HUD_BOTTOM, HUD_TOP, Hud, LevelInfo, load_fonts
from engine.render.keys import Command, action_for_key
from engine.render.sprites import LevelSprites, Terrain, TextureCache
from engine.render.tile_layer import BACKGROUND as TILE_BACKGROUND

log = logging.getLogger(__name__)

BACKGROUND = TILE_BACKGROUND  # the window's clear colour, and what unseen tiles show
OnCommand = Callable[[Command], None]


def _noop_command(command: Command) -> None:
    log.debug("unhandled command %s", command)


class GameView(arcade.View):
    """Plays one level: keys -> ``game.act``, sprites and HUD follow the game.

    ``on_level_over(game)`` is called once, after the turn that ended the level
    (won, dead or quit).  ``zoom`` is screen pixels per world pixel;
    ``reveal`` lifts the fog of war (screenshots, level previews);
    ``terrain`` picks how the map is drawn (see :class:`LevelSprites`:
    ``"layer"``, one texture per level, or ``"sprites"``, one sprite per tile).
    """

    def __init__(
        self,
        game: Any,
        info: LevelInfo,
        textures: TextureCache,
        *,
        on_level_over: Callable[[Any], None] | None = None,
        on_command: OnCommand = _noop_command,
        zoom: float = 2.0,
        reveal: bool = False,
        terrain: Terrain = "layer",
        window: arcade.Window | None = None,
    ) -> None:
        super().__init__(window, background_color=BACKGROUND)
        self.game = game
        self.reveal = reveal
        self.info = info
        self.sprites = LevelSprites(game.level, textures, terrain=terrain)
        self.hud = Hud()
        self.on_level_over = on_level_over
        self.on_command = on_command
        self.camera = Camera2D(zoom=zoom)
        self.hud_camera = Camera2D()
        self._over_reported = False
        self.refresh(snap_camera=True)

    # -- state -> pictures -------------------------------------------------------

    def refresh(self, *, snap_camera: bool = False) -> None:
        """Sync sprites and HUD with the game; call after anything changes it."""
        self.sprites.sync(self.game, reveal=self.reveal)
        self.hud.update(self.game, self.info)
        if snap_camera:
            self.camera.position = self.camera_target()

    def camera_target(self) -> tuple[float, float]:
        """Where the camera looks: the player, kept inside the map when the map is big enough."""
        px, py = self.sprites.player_sprite.position
        zoom = self.camera.zoom
        half_w = self.window.width / (2 * zoom)
        half_h = self.window.height / (2 * zoom)
        # The HUD covers a strip at the top and the bottom: let the map scroll under them.
        top, bottom = HUD_TOP / zoom, HUD_BOTTOM / zoom
        # Clamp the centre of the uncovered area, then shift back to the camera's centre.
        centre = _clamp(py, half_h - (top + bottom) / 2, self.sprites.world_height)
        y = centre - (bottom - top) / 2
        return (_clamp(px, half_w, self.sprites.world_width), y)

    # -- input ------------------------------------------------------------------

    def act(self, action: Action) -> None:
        """Play one action (what a key press does); ignored once the level is over."""
        if not self.playing:
            return
        self.game.act(action)
        self.refresh()
        if not self.playing and not self._over_reported:
            self._over_reported = True
            if self.on_level_over is not None:
                self.on_level_over(self.game)

    @property
    def playing(self) -> bool:
        return str(getattr(self.game.status, "value", self.game.status)) == "playing"

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        meaning = action_for_key(symbol, modifiers)
        if meaning is None:
            return False
        if isinstance(meaning, Command):
            self.on_command(meaning)
        else:
            self.act(meaning)
        return True

    # -- frame ------------------------------------------------------------------

    def on_update(self, delta_time: float) -> None:
        tx, ty = self.camera_target()
        cx, cy = self.camera.position
        k = min(1.0, delta_time * 12.0)  # quick ease, no lag you can feel
        self.camera.position = (cx + (tx - cx) * k, cy + (ty - cy) * k)

    def on_resize(self, width: int, height: int) -> None:
        self.camera.match_window()
        self.hud_camera.match_window()

    def on_draw(self) -> None:
        if not self.sprites.covers(self.camera):  # else the opaque terrain overwrites every pixel
            self.clear()
        self.draw_world()
        self.draw_hud()

    def draw_world(self) -> None:
        with self.camera.activate():
            self.sprites.draw()

    def draw_hud(self) -> None:
        with self.hud_camera.activate():
            self.hud.draw(self.window.width, self.window.height)


def fit_zoom(level_width: int, level_height: int, tile_px: int, width: int, height: int) -> float:
    """The zoom that shows a whole level in a ``width`` x ``height`` window between the HUD strips."""
    zoom = min(width / (level_width * tile_px), (height - HUD_TOP - HUD_BOTTOM) / (level_height * tile_px))
    return zoom if zoom < 1 else int(zoom * 2) / 2  # half steps keep pixel art crisp enough


def _clamp(value: float, half_view: float, world: float) -> float:
    if world <= 2 * half_view:
        return world / 2
    return max(half_view, min(world - half_view, value))


class MessageView(arcade.View):
    """A full-screen message with a title, body lines and a key hint.

    Base of the title, end and error screens; ``background`` (a view) is drawn
    dimmed underneath when given, so the level stays in sight.
    """

    title_colour = (250, 210, 80)

    def __init__(
        self,
        title: str,
        lines: list[str] | tuple[str, ...] = (),
        hint: str = "",
        *,
        on_command: OnCommand = _noop_command,
        background: arcade.View | None = None,
        window: arcade.Window | None = None,
    ) -> None:
        super().__init__(window, background_color=BACKGROUND)
        load_fonts()
        self.on_command = on_command
        self.background = background
        self.title = arcade.Text(title, 0, 0, self.title_colour, 28, font_name=FONT,
                                 anchor_x="center", anchor_y="center")
        self.body = arcade.Text("\n".join(lines), 0, 0, (230, 230, 235), 13, font_name=FONT,
                                anchor_x="center", anchor_y="top", multiline=True,
                                width=max(200, self.window.width - 120), align="center")
        self.hint = arcade.Text(hint, 0, 0, (160, 170, 190), 11, font_name=FONT,
                                anchor_x="center", anchor_y="center")
        self.camera = Camera2D()

    @property
    def lines(self) -> str:
        return self.body.text

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        meaning = action_for_key(symbol, modifiers)
        if isinstance(meaning, Command):
            self.on_command(meaning)
            return True
        return False

    def on_resize(self, width: int, height: int) -> None:
        self.camera.match_window()

    def on_draw(self) -> None:
        self.clear()
        if self.background is not None:
            self.background.on_draw()
        with self.camera.activate():
            w, h = self.window.width, self.window.height
            if self.background is not None:
                arcade.draw_lrbt_rectangle_filled(0, w, 0, h, (0, 0, 0, 170))
            self.title.position = (w / 2, h * 0.68)
            self.body.position = (w / 2, h * 0.58)
            self.hint.position = (w / 2, h * 0.18)
            self.title.draw()
            self.body.draw()
            self.hint.draw()


class TitleView(MessageView):
    """The first screen: any key but Esc starts."""

    def __init__(self, title: str, lines: list[str] | tuple[str, ...] = (), *, on_command: OnCommand,
                 window: arcade.Window | None = None) -> None:
        super().__init__(
            title, lines,
            "any key: start    arrows / WASD / numpad / hjklyubn: move    . : wait    Esc: quit",
            on_command=on_command, window=window,
        )

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        meaning = action_for_key(symbol, modifiers)
        self.on_command(Command.QUIT if meaning == Command.QUIT else Command.START)
        return True


class EndView(MessageView):
    """Game over (``won=False``) or victory: R plays again, Esc quits."""

    def __init__(self, *, won: bool, lines: list[str] | tuple[str, ...] = (), on_command: OnCommand,
                 background: arcade.View | None = None, window: arcade.Window | None = None) -> None:
        self.title_colour = (120, 230, 120) if won else (235, 70, 70)
        super().__init__(
            "Victory!" if won else "You died", lines, "R: play again    Esc: quit",
            on_command=on_command, background=background, window=window,
        )
        self.won = won


class ErrorView(MessageView):
    """The level source failed: say what happened and offer a retry instead of freezing."""

    title_colour = (255, 120, 90)

    def __init__(self, message: str, *, on_command: OnCommand, window: arcade.Window | None = None) -> None:
        super().__init__(
            "The level could not be made", [message, "", "Check the generator settings or try again."],
            "R: try again    Esc: quit", on_command=on_command, window=window,
        )


class LoadingView(MessageView):
    """"Generating next level..." over the last frame, until ``ready()`` says so.

    ``on_ready`` runs on the first frame where ``ready()`` is true; Esc still quits.
    """

    def __init__(self, ready: Callable[[], bool], on_ready: Callable[[], None], *,
                 message: str = "Generating next level", on_command: OnCommand = _noop_command,
                 background: arcade.View | None = None, window: arcade.Window | None = None) -> None:
        super().__init__(message, (), "Esc: quit", on_command=on_command, background=background,
                         window=window)
        self.ready = ready
        self.on_ready = on_ready
        self._message = message
        self._elapsed = 0.0
        self._done = False

    def on_update(self, delta_time: float) -> None:
        self._elapsed += delta_time
        dots = "." * (1 + int(self._elapsed * 3) % 3)
        if self.title.text != self._message + dots:
            self.title.text = self._message + dots
        if not self._done and self.ready():
            self._done = True
            self.on_ready()
