"""Walkable regions: 4-connected component labelling for one level or a stack of levels.

Labels are numbered ``1..n`` in scan order (a region's number is set by its
first tile in row-major order), exactly as ``scipy.ndimage.label`` numbers
them; the gates rely on that to count regions per level in a stack and to
name each cut-off region by its first tile.

OpenCV's ``connectedComponentsWithAlgorithm`` (SAUF, a one-pass-per-row
union-find in C++) does the work when ``opencv-python-headless`` is
installed: about 4 us for a 48x32 level against about 25 us for
``ndimage.label``, whose generic N-D line scan dominates a single-level
check.  Without OpenCV, ``scipy.ndimage.label`` gives the same labels (a test
runs both on the same masks).  OpenCV's own worker threads are turned off:
a level is a few thousand tiles, and handing it to another thread costs more
than labelling it (measured in benchmarks/validate.py).
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

log = logging.getLogger(__name__)

_CROSS: Final = ndimage.generate_binary_structure(2, 1)

try:  # optional accelerator; identical results either way
    import cv2 as _cv2
except ImportError:  # pragma: no cover - depends on the environment
    _cv2 = None
else:
    _cv2.setNumThreads(1)

#: Which labeller runs: "opencv" or "scipy".
BACKEND: str = "opencv" if _cv2 is not None else "scipy"


def _label_cv2(walk: NDArray[np.uint8]) -> tuple[NDArray[np.int32], int]:
    n, labels = _cv2.connectedComponentsWithAlgorithm(walk, 4, _cv2.CV_32S, _cv2.CCL_SAUF)
    return labels, n - 1  # OpenCV counts the background as label 0


def _label_scipy(walk: NDArray[np.uint8]) -> tuple[NDArray[np.int32], int]:
    labels, n = ndimage.label(walk, structure=_CROSS)
    return labels, int(n)


def threads() -> int:
    """Threads the labeller may use (1: OpenCV's pool is switched off; scipy never threads)."""
    return int(_cv2.getNumThreads()) if BACKEND == "opencv" else 1


_LABELLERS: Final = {"opencv": _label_cv2, "scipy": _label_scipy}


def use_backend(name: str) -> str:
    """Switch the labeller (tests compare the two); returns the previous name."""
    global BACKEND, label4
    if name not in _LABELLERS or (name == "opencv" and _cv2 is None):
        raise ValueError(f"unknown or unavailable labeller {name!r}; available: "
                         f"{', '.join(k for k in _LABELLERS if k != 'opencv' or _cv2 is not None)}")
    old, BACKEND = BACKEND, name
    label4 = _LABELLERS[name]
    return old


#: label4(walk) -> (labels, regions): ``walk`` is a 2-D C-contiguous uint8 0/1 mask.
label4 = _LABELLERS[BACKEND]


def label_stack(walk: NDArray[np.bool_]) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
    """Label an ``(n, h, w)`` stack of walkable masks at once.

    The levels are laid out one under another with an all-wall row between
    them (see :func:`mosaic`), so no region can cross from one level into
    the next, and labelled in one call.  Returns the ``(n, h, w)`` labels (a
    view; numbers keep counting up from level to level) and each level's
    region count.
    """
    n, h, w = walk.shape
    board = mosaic(n, h, w)
    board[:, :h] = walk
    return label_mosaic(board)


def mosaic(n: int, h: int, w: int) -> NDArray[np.uint8]:
    """An all-zero ``(n, h + 1, w)`` board: level ``k``'s mask goes in ``[k, :h]``, row ``h`` stays 0."""
    return np.zeros((n, h + 1, w), dtype=np.uint8)


def label_mosaic(board: NDArray[np.uint8]) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
    """Label a filled :func:`mosaic`: the ``(n, h, w)`` labels (a view) and each level's region count."""
    n, h1, w = board.shape
    flat, _ = label4(board.reshape(n * h1, w))
    labels = flat.reshape(n, h1, w)[:, :h1 - 1]
    top = np.maximum.accumulate(labels.max(axis=(1, 2))) if n else np.zeros(0, dtype=np.int32)
    return labels, np.diff(top, prepend=0)
