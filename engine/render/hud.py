"""The heads-up display: HP bar, level and generator line, turn, message log.

Drawn in screen space after the world.  Text objects are made once and only
re-laid out when their text changes; labels are drawn as one pyglet batch and
the panels as one shape list, so the HUD costs two draw calls a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.render.arcade_import import arcade
from arcade.shape_list import ShapeElementList, create_rectangle_filled
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
    are one :class:`~arcade.shape_list.ShapeElementList` (one draw call,
    rebuilt only when the window size, the HP or the source line change),
    positions are only recomputed when the window size changes, and a new
    message rotates the log's labels instead of re-laying out all five.
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

        #: Panels, HP bar and outline: one vertex buffer, rebuilt when the size, HP or source line change.
        self.shapes: ShapeElementList | None = None
        self._shapes_key: tuple[Any, ...] | None = None
        self._size: tuple[int, int] | None = None

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
        """Place everything for a ``width`` x ``height`` window (only work when something moved)."""
        top = height - BAR_H
        bar_l, bar_w, mid = 10, 120, top + BAR_H / 2
        if self._size != (width, height):
            self._size = (width, height)
            self.hp_text.position = (bar_l + bar_w + 8, mid)
            self.level_text.position = (bar_l + bar_w + 90, mid)
            self.turn_text.position = (width - 10, mid)
            self.source_text.position = (width - 10, HUD_BOTTOM + 6)
            self._place_log()
        hp, max_hp = self.hp
        source_width = self.source_text.content_width
        key = (width, height, hp, max_hp, source_width)
        if key == self._shapes_key:
            return
        self._shapes_key = key
        share = max(0.0, min(1.0, hp / max_hp))
        colour = (60, 200, 80, 255) if share > 0.5 else (230, 180, 40, 255) if share > 0.25 else (230, 50, 50, 255)
        rects = [
            (0, width, top, height, PANEL),
            (0, width, 0, HUD_BOTTOM, PANEL),
            (width - source_width - 16, width, HUD_BOTTOM, HUD_BOTTOM + 20, PANEL),
            (bar_l, bar_l + bar_w, mid - 7, mid + 7, (70, 20, 24, 255)),
        ]
        if share > 0:
            rects.append((bar_l, bar_l + bar_w * share, mid - 7, mid + 7, colour))
        edge = (230, 230, 230, 255)  # a 1-pixel outline centred on the bar's edges
        rects += [
            (bar_l - 0.5, bar_l + bar_w + 0.5, mid + 6.5, mid + 7.5, edge),
            (bar_l - 0.5, bar_l + bar_w + 0.5, mid - 7.5, mid - 6.5, edge),
            (bar_l - 0.5, bar_l + 0.5, mid - 7.5, mid + 7.5, edge),
            (bar_l + bar_w - 0.5, bar_l + bar_w + 0.5, mid - 7.5, mid + 7.5, edge),
        ]
        shapes = ShapeElementList()
        for left, right, bottom, top_, c in rects:
            shapes.append(create_rectangle_filled((left + right) / 2, (bottom + top_) / 2, right - left,
                                                  top_ - bottom, c))
        self.shapes = shapes

    def _place_log(self) -> None:
        for i, text in enumerate(self.log_texts):
            pos = (10, 6 + (LOG_LINES - 1 - i) * LINE_H)
            if text.position[:2] != pos:
                text.position = pos

    def draw(self, width: int, height: int) -> None:
        self.layout(width, height)
        self.shapes.draw()
        self.batch.draw()


def _set(text: arcade.Text, value: str) -> None:
    if text.text != value:
        text.text = value
