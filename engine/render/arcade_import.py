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
import importlib.util
import sys


def _preload_triton() -> None:
    """Load triton's native library before pyglet loads the GL/EGL stack.

    With the PyTorch wheel installed (the ``train`` extra), importing triton
    *after* pyglet's EGL context segfaults the process (both bring their own
    LLVM); loaded in this order they coexist.  Measured: ``import arcade;
    import transformers.masking_utils`` crashes, the reverse order draws and
    imports fine.  Best effort: without torch/triton there is nothing to do.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton._C.libtriton")
    except Exception:  # noqa: BLE001 - an unusable triton is torch's business, not the renderer's
        pass


_preload_triton()

with contextlib.redirect_stdout(sys.stderr):
    import arcade
    import arcade.camera
    import arcade.key

__all__ = ["arcade"]
