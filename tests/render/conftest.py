"""The one headless window every render test shares (arcade allows one per process)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ARCADE_HEADLESS", "1")

from engine.core.level import Level, Placed  # noqa: E402


@pytest.fixture(scope="session")
def window():
    import arcade

    win = arcade.Window(640, 480, "Dungeon Forge render tests", visible=False)
    yield win
    win.close()


@pytest.fixture
def textures(window):
    from engine.render.sprites import TextureCache
    from engine.picture.tiles import Tileset

    return TextureCache(Tileset.load())


def corridor_level(theme: str = "crypt", *, exit_x: int = 18) -> Level:
    """A 20x12 room split by a wall with a door; the player starts top-left."""
    grid = np.ones((12, 20), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    grid[6, 1:-1] = 1
    grid[6, 10] = 2
    return Level(
        name="Test Hall", grid=grid, spawn=(2, 2), exit=(exit_x, 10), theme=theme,
        enemies=[Placed("rat", 15, 9)], items=[Placed("potion", 3, 2)],
    )
