"""The window-less level picture and the tiles behind it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.core.content import ALL_THEMES, ENEMY_KINDS, ITEM_KINDS
from engine.core.level import Level, Placed
from engine.picture import render_level_image, render_level_png
from engine.picture.tiles import Tileset, default_tile_dir


def _level(theme: str = "crypt") -> Level:
    grid = np.ones((12, 20), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    grid[6, 1:15] = 1
    grid[6, 8] = 2
    return Level(
        name="t", grid=grid, spawn=(1, 1), exit=(18, 10), theme=theme,
        enemies=[Placed("orc", 10, 9)], items=[Placed("potion", 4, 3)],
    )


@pytest.mark.parametrize("tile_px", [4, 16, 24])
def test_image_is_tiles_times_pixels(tile_px):
    img = render_level_image(_level(), tile_px=tile_px)
    assert img.size == (20 * tile_px, 12 * tile_px)


def test_wall_floor_door_exit_and_things_are_drawn_differently():
    level = _level()
    px = 16
    a = np.asarray(render_level_image(level, tile_px=px)).astype(int)

    def tile(x, y):
        return a[y * px : (y + 1) * px, x * px : (x + 1) * px]

    wall, floor, door = tile(0, 0), tile(5, 2), tile(8, 6)
    exit_, player, enemy, item = tile(18, 10), tile(1, 1), tile(10, 9), tile(4, 3)
    pictures = [wall, floor, door, exit_, player, enemy, item]
    for i, p in enumerate(pictures):
        for q in pictures[i + 1 :]:
            assert np.abs(p - q).mean() > 10
    assert wall.mean() > floor.mean() + 20  # walls read as lighter than floor


def test_png_written_and_readable(tmp_path):
    out = render_level_png(_level("sewer"), tmp_path / "sub" / "level.png", tile_px=8)
    with Image.open(out) as img:
        assert img.size == (160, 96)


def test_themes_look_different():
    floors = [np.asarray(render_level_image(_level(t), tile_px=8)).mean(axis=(0, 1)) for t in ALL_THEMES]
    for i, f in enumerate(floors):
        for g in floors[i + 1 :]:
            assert np.abs(f - g).sum() > 5


def test_every_catalogue_kind_has_its_own_picture():
    ts = Tileset.load()
    pictures = [ts.enemy(k) for k in ENEMY_KINDS] + [ts.item(k) for k in ITEM_KINDS] + [ts.player()]
    raw = {np.asarray(p).tobytes() for p in pictures}
    assert len(raw) == len(pictures)
    assert all(ts.enemy(k) is not ts.enemy("unknown") for k in ENEMY_KINDS)
    for theme in ALL_THEMES:
        assert ts.theme_of(theme) == theme


def test_unknown_kind_and_theme_fall_back_not_fail():
    level = Level(
        name="odd", grid=_level().grid, spawn=(1, 1), exit=(18, 10), theme="moonbase",
        enemies=[Placed("dragon", 10, 9)], items=[Placed("relic", 4, 3)],
    )
    assert render_level_image(level, tile_px=4).size == (80, 48)


def test_shipped_tiles_match_the_generator_script():
    from assets.make_tiles import all_tiles

    shipped = Tileset.load()
    for name, img in all_tiles().items():
        assert (default_tile_dir() / f"{name}.png").exists(), name
        assert np.array_equal(np.asarray(shipped.image(name)), np.asarray(img)), name


def test_picture_needs_no_arcade():
    import subprocess
    import sys

    code = "import sys, engine.picture; sys.exit('arcade' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
