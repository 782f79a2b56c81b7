"""The tile pictures both renderers use: Pillow images by role, theme and kind.

A :class:`Tileset` reads a folder of 16x16 PNGs named as ``assets/make_tiles.py``
writes them (``<theme>_floor.png``, ``enemy_<kind>.png``, ...).  The default is
the sample art shipped in the ``assets`` package; a game with its own art
passes its own folder.  Kinds or themes with no picture fall back to a marked
placeholder (and a log warning) instead of failing, so new content never stops
a level from drawing.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from pathlib import Path

from PIL import Image

from engine.core.content import Tile
from engine.core.errors import EngineError

log = logging.getLogger(__name__)


class TilesetError(EngineError):
    """The tile pictures are missing or unusable; the message says which and how to fix it."""

#: Terrain roles drawn per theme, and the file stem suffix for each.
TERRAIN_STEMS: dict[Tile, str] = {Tile.FLOOR: "floor", Tile.WALL: "wall", Tile.DOOR: "door"}
FALLBACK_THEME = "crypt"


def default_tile_dir() -> Path:
    """The sample art shipped with the project (``assets/tiles``)."""
    return Path(str(resources.files("assets") / "tiles"))


class Tileset:
    """Pictures for terrain, the exit, the player, enemies and items at one size.

    >>> ts = Tileset.load(tile_px=16)
    >>> ts.terrain("cave", Tile.WALL).size
    (16, 16)
    >>> ts.enemy("no-such-kind") is ts.enemy("unknown")
    True
    """

    def __init__(self, images: dict[str, Image.Image], *, tile_px: int = 16) -> None:
        if tile_px < 1:
            raise TilesetError(f"tile_px must be a positive number of pixels, got {tile_px}")
        missing = [f"{FALLBACK_THEME}_{s}" for s in (*TERRAIN_STEMS.values(), "exit")]
        missing += ["player", "enemy_unknown", "item_unknown"]
        missing = [m for m in missing if m not in images]
        if missing:
            raise TilesetError(
                f"tileset lacks {', '.join(missing)}.png; regenerate with `python -m assets.make_tiles`"
            )
        self.tile_px = tile_px
        self._images = {
            name: _fit(img.convert("RGBA"), tile_px) for name, img in images.items()
        }
        self._warned: set[str] = set()

    @classmethod
    def load(cls, folder: str | Path | None = None, *, tile_px: int = 16) -> Tileset:
        """Read every ``*.png`` in ``folder`` (default: the shipped sample art)."""
        root = Path(folder) if folder is not None else default_tile_dir()
        return _load_cached(str(root), tile_px) if folder is None else _read(root, tile_px)

    # -- lookups ---------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._images)

    def image(self, name: str) -> Image.Image:
        """A picture by file stem, e.g. ``"cave_floor"`` or ``"enemy_rat"``."""
        return self._images[name]

    def theme_of(self, theme: str) -> str:
        if f"{theme}_floor" in self._images:
            return theme
        self._warn(f"theme:{theme}", "no tiles for theme %r; drawing it as %r", theme, FALLBACK_THEME)
        return FALLBACK_THEME

    def terrain(self, theme: str, tile: Tile | int) -> Image.Image:
        return self._images[f"{self.theme_of(theme)}_{TERRAIN_STEMS[Tile(tile)]}"]

    def exit(self, theme: str) -> Image.Image:
        return self._images[f"{self.theme_of(theme)}_exit"]

    def player(self) -> Image.Image:
        return self._images["player"]

    def enemy(self, kind: str) -> Image.Image:
        return self._kind("enemy", kind)

    def item(self, kind: str) -> Image.Image:
        return self._kind("item", kind)

    def _kind(self, role: str, kind: str) -> Image.Image:
        name = f"{role}_{kind}"
        if name in self._images:
            return self._images[name]
        if kind != "unknown":
            self._warn(name, "no picture %s.png; drawing a placeholder", name)
        return self._images[f"{role}_unknown"]

    def _warn(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)


def _fit(img: Image.Image, tile_px: int) -> Image.Image:
    if img.size == (tile_px, tile_px):
        return img
    return img.resize((tile_px, tile_px), Image.Resampling.NEAREST)


def _read(root: Path, tile_px: int) -> Tileset:
    if not root.is_dir():
        raise TilesetError(f"tile folder {root} does not exist; pass a folder of PNG tiles")
    images = {}
    for path in sorted(root.glob("*.png")):
        with Image.open(path) as img:
            images[path.stem] = img.convert("RGBA")
    return Tileset(images, tile_px=tile_px)


@cache
def _load_cached(root: str, tile_px: int) -> Tileset:
    return _read(Path(root), tile_px)

