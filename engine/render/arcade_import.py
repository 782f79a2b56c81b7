"""Import arcade without its start-up chatter on stdout.

arcade and pyglet print notes ("EGL version", "Running without PyMunk") with
``print`` when first imported; command lines here promise exactly one JSON
object on stdout with ``--json``, so those notes go to stderr instead.
Every renderer module imports arcade through this one.

Headless rendering still has to be chosen before the first import: set
``ARCADE_HEADLESS=1`` in the environment (tests and ``screenshot`` do).
"""

from __future__ import annotations

import contextlib
import sys

with contextlib.redirect_stdout(sys.stderr):
    import arcade
    import arcade.camera
    import arcade.key

__all__ = ["arcade"]
