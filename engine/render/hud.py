"""The heads-up display: HP bar, level and generator line, turn, message log.

Drawn in screen space after the world.  Text objects are made once and only
re-laid out when their text changes, so the HUD costs little per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.render.arcade_import import arcade

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
    """Screen-space panel drawn over the map."""

    def __init__(self) -> None:
        load_fonts()
        self.hp_text = arcade.Text("", 0, 0, arcade.color.WHITE, 11, font_name=FONT, anchor_y="center")
        self.level_text = arcade.Text("", 0, 0, (235, 225, 200), 11, font_name=FONT, anchor_y="center")
        self.turn_text = arcade.Text("", 0, 0, (200, 200, 210), 11, font_name=FONT, anchor_y="center",
                                     anchor_x="right")
        self.source_text = arcade.Text("", 0, 0, (150, 200, 255), 10, font_name=FONT, anchor_x="right")
        self.log_texts = [arcade.Text("", 0, 0, (220, 220, 220), 10, font_name=FONT) for _ in range(LOG_LINES)]
        self.hp = (0, 1)

    def update(self, game: Any, info: LevelInfo) -> None:
        hp, max_hp = int(game.player.hp), int(max(1, game.player.max_hp))
        self.hp = (hp, max_hp)
        _set(self.hp_text, f"HP {hp}/{max_hp}")
        _set(self.level_text, f"Depth {info.depth}  {info.name}  ({info.theme})")
        _set(self.turn_text, f"Turn {int(game.turn)}")
        _set(self.source_text, info.generator_line())
        recent = list(game.messages)[-LOG_LINES:]
        recent = [""] * (LOG_LINES - len(recent)) + [str(m) for m in recent]
        for text, line in zip(self.log_texts, recent, strict=True):
            _set(text, line)

    def draw(self, width: int, height: int) -> None:
        top = height - BAR_H
        arcade.draw_lrbt_rectangle_filled(0, width, top, height, PANEL)
        log_h = HUD_BOTTOM
        arcade.draw_lrbt_rectangle_filled(0, width, 0, log_h, PANEL)

        hp, max_hp = self.hp
        bar_l, bar_w, mid = 10, 120, top + BAR_H / 2
        arcade.draw_lrbt_rectangle_filled(bar_l, bar_l + bar_w, mid - 7, mid + 7, (70, 20, 24, 255))
        share = max(0.0, min(1.0, hp / max_hp))
        colour = (60, 200, 80, 255) if share > 0.5 else (230, 180, 40, 255) if share > 0.25 else (230, 50, 50, 255)
        if share > 0:
            arcade.draw_lrbt_rectangle_filled(bar_l, bar_l + bar_w * share, mid - 7, mid + 7, colour)
        arcade.draw_lrbt_rectangle_outline(bar_l, bar_l + bar_w, mid - 7, mid + 7, (230, 230, 230, 255), 1)
        self.hp_text.position = (bar_l + bar_w + 8, mid)
        self.level_text.position = (bar_l + bar_w + 90, mid)
        self.turn_text.position = (width - 10, mid)
        self.source_text.position = (width - 10, log_h + 6)
        for i, text in enumerate(self.log_texts):
            text.position = (10, 6 + (LOG_LINES - 1 - i) * LINE_H)
        arcade.draw_lrbt_rectangle_filled(width - self.source_text.content_width - 16, width,
                                          log_h, log_h + 20, PANEL)
        for text in (self.hp_text, self.level_text, self.turn_text, self.source_text, *self.log_texts):
            text.draw()


def _set(text: arcade.Text, value: str) -> None:
    if text.text != value:
        text.text = value
