"""Field of view, from python-tcod (symmetric shadowcasting).

Symmetric means: if the player sees an enemy's tile, the enemy sees the
player's.  The rules rely on that to answer "does this enemy see the player?"
from the player's one FOV per turn instead of one FOV per enemy.

>>> import numpy as np
>>> open_room = np.ones((5, 7), dtype=bool)
>>> open_room[2, 3] = False  # a pillar
>>> v = field_of_view(open_room, (1, 2), radius=8)
>>> bool(v[2, 0]), bool(v[2, 3]), bool(v[2, 6])
(True, True, False)
"""

from __future__ import annotations

from typing import Final

import numpy as np
import tcod.constants
import tcod.map
from numpy.typing import NDArray

#: How far actors see, in tiles (a circle).
DEFAULT_FOV_RADIUS: Final = 8


def field_of_view(
    transparent: NDArray[np.bool_], pos: tuple[int, int], radius: int = DEFAULT_FOV_RADIUS
) -> NDArray[np.bool_]:
    """Tiles visible from ``pos`` (``(x, y)``) as a bool array ``[y, x]``; walls that
    bound the view are visible too (so the renderer can draw them)."""
    x, y = pos
    return tcod.map.compute_fov(
        transparent,
        (y, x),
        radius=radius,
        light_walls=True,
        algorithm=tcod.constants.FOV_SYMMETRIC_SHADOWCAST,
    )
