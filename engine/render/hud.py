"""The heads-up display: HP bar, level and generator line, turn, message log.

Drawn in screen space after the world.  Text objects are made once and only
re-laid out when their text changes; labels are drawn as one pyglet batch and
the panels as one sprite list, so the HUD costs two draw calls a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.render.arcade_import import arcade
from pyglet.graphics import Batch

from engine.core.source import SourcedLevel

FONT = ("Kenney Mini Square", "DejaVu Sans", "Arial")
BAR_H = 30
LOG_LINES = 5
LINE_H = 16
PANEL = (10, 8, 14, 220)
#: Screen pixels the HUD covers at the top and the bottom of the window.
HUD_TOP = BAR_H
HUD_BOTTOM = LOG_LINES * LINE_H + 8
_fonts_loaded = False


def load_fonts() -> None:
    """Register the CC0 Kenney fonts that ship with arcade (once)."""
    global _fonts_loaded
    if not _fonts_loaded:
        arcade.resources.load_kenney_fonts()
        _fonts_loaded = True


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """What the HUD says about the level being played and where it came from."""

    name: str
    theme: str
    depth: int = 1
    backend: str = "unknown"
    model_version: str | None = None

    @classmethod
    def from_sourced(cls, sourced: SourcedLevel, *, depth: int = 1) -> LevelInfo:
        lvl = sourced.level
        return cls(lvl.name, lvl.theme, depth, sourced.backend, sourced.model_version)

    def generator_line(self) -> str:
        if self.model_version and self.model_version.startswith(self.backend):
            return f"made by {self.model_version}"
        version = f" {self.model_version}" if self.model_version else ""
        return f"made by {self.backend}{version}"


class Hud:
    """Screen-space panel drawn over the map.

    Everything is made once and only changed when what it shows changes: the
    labels share one pyglet batch (one draw call), the panels and the HP bar
    are solid-colour sprites in one :class:`arcade.SpriteList`, positions
    are only recomputed when the window size changes, and a new message
    rotates the log's labels instead of re-laying out all five.
    """

    def __init__(self) -> None:
        load_fonts()
        self.batch = Batch()
        b = self.batch
        self.hp_text = arcade.Text("", 0, 0, arcade.color.WHITE, 11, font_name=FONT, anchor_y="center", batch=b)
        self.level_text = arcade.Text("", 0, 0, (235, 225, 200), 11, font_name=FONT, anchor_y="center", batch=b)
        self.turn_text = arcade.Text("", 0, 0, (200, 200, 210), 11, font_name=FONT, anchor_y="center",
                                     anchor_x="right", batch=b)
        self.source_text = arcade.Text("", 0, 0, (150, 200, 255), 10, font_name=FONT, anchor_x="right", batch=b)
        #: The message log, oldest line first (the order changes as lines rotate).
        self.log_texts = [arcade.Text("", 0, 0, (220, 220, 220), 10, font_name=FONT, batch=b)
                          for _ in range(LOG_LINES)]
        self.hp = (0, 1)

        self.shapes = arcade.SpriteList()
        self._top = self._rect(PANEL)
        self._bottom = self._rect(PANEL)
        self._source_panel = self._rect(PANEL)
        self._bar_back = self._rect((70, 20, 24, 255))
        self._bar = self._rect((60, 200, 80, 255))
        self._outline = [self._rect((230, 230, 230, 255)) for _ in range(4)]
        self._size: tuple[int, int] | None = None
        self._bar_state: tuple[int, int, int] | None = None
        self._source_width = -1.0

    def _rect(self, colour: tuple[int, int, int, int]) -> arcade.SpriteSolidColor:
        sprite = arcade.SpriteSolidColor(1, 1, color=colour)
        self.shapes.append(sprite)
        return sprite

    def update(self, game: Any, info: LevelInfo) -> None:
        hp, max_hp = int(game.player.hp), int(max(1, game.player.max_hp))
        self.hp = (hp, max_hp)
        _set(self.hp_text, f"HP {hp}/{max_hp}")
        _set(self.level_text, f"Depth {info.depth}  {info.name}  ({info.theme})")
        _set(self.turn_text, f"Turn {int(game.turn)}")
        _set(self.source_text, info.generator_line())
        recent = [str(m) for m in list(game.messages)[-LOG_LINES:]]
        self._set_log([""] * (LOG_LINES - len(recent)) + recent)

    def _set_log(self, lines: list[str]) -> None:
        old = [t.text for t in self.log_texts]
        if old == lines:
            return
        # New messages push the old ones up: reuse their labels, lay out only the new lines.
        shift = next((k for k in range(1, LOG_LINES) if old[k:] == lines[: LOG_LINES - k]), LOG_LINES)
        self.log_texts = self.log_texts[shift:] + self.log_texts[:shift]
        for text, line in zip(self.log_texts, lines, strict=True):
            _set(text, line)
        if self._size is not None:
            self._place_log()

    def layout(self, width: int, height: int) -> None:
        """Place everything for a ``width`` x ``height`` window (only when the size or the HP changed)."""
        if self._size != (width, height):
            self._size = (width, height)
            top = height - BAR_H
            _place(self._top, 0, width, top, height)
            _place(self._bottom, 0, width, 0, HUD_BOTTOM)
            bar_l, bar_w, mid = 10, 120, top + BAR_H / 2
            _place(self._bar_back, bar_l, bar_l + bar_w, mid - 7, mid + 7)
            for sprite, (l, r, b, t) in zip(self._outline, (
                # a 1-pixel outline centred on the bar's edges
                (bar_l - 0.5, bar_l + bar_w + 0.5, mid + 6.5, mid + 7.5),
                (bar_l - 0.5, bar_l + bar_w + 0.5, mid - 7.5, mid - 6.5),
                (bar_l - 0.5, bar_l + 0.5, mid - 7.5, mid + 7.5),
                (bar_l + bar_w - 0.5, bar_l + bar_w + 0.5, mid - 7.5, mid + 7.5),
            ), strict=True):
                _place(sprite, l, r, b, t)
            self.hp_text.position = (bar_l + bar_w + 8, mid)
            self.level_text.position = (bar_l + bar_w + 90, mid)
            self.turn_text.position = (width - 10, mid)
            self.source_text.position = (width - 10, HUD_BOTTOM + 6)
            self._place_log()
            self._bar_state = None
            self._source_width = -1.0
        hp, max_hp = self.hp
        bar_state = (hp, max_hp, height)
        if bar_state != self._bar_state:
            self._bar_state = bar_state
            share = max(0.0, min(1.0, hp / max_hp))
            self._bar.color = (60, 200, 80, 255) if share > 0.5 else (230, 180, 40, 255) if share > 0.25 \
                else (230, 50, 50, 255)
            self._bar.visible = share > 0
            mid = height - BAR_H / 2
            _place(self._bar, 10, 10 + max(1.0, 120 * share), mid - 7, mid + 7)
        source_width = self.source_text.content_width
        if source_width != self._source_width:
            self._source_width = source_width
            _place(self._source_panel, width - source_width - 16, width, HUD_BOTTOM, HUD_BOTTOM + 20)

    def _place_log(self) -> None:
        for i, text in enumerate(self.log_texts):
            pos = (10, 6 + (LOG_LINES - 1 - i) * LINE_H)
            if text.position[:2] != pos:
                text.position = pos

    def draw(self, width: int, height: int) -> None:
        self.layout(width, height)
        self.shapes.draw()
        self.batch.draw()


def _place(sprite: arcade.SpriteSolidColor, left: float, right: float, bottom: float, top: float) -> None:
    sprite.width, sprite.height = max(1.0, right - left), max(1.0, top - bottom)
    sprite.position = ((left + right) / 2, (bottom + top) / 2)


def _set(text: arcade.Text, value: str) -> None:
    if text.text != value:
        text.text = value
