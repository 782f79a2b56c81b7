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
runs both on the same masks).  OpenCV is imported on first use, and its own
worker threads are turned off (for the whole process: nothing else here uses it):
a level is a few thousand tiles, and handing it to another thread costs more
than labelling it (one 48x32 level: about 4.8 us on one thread, 7 us with
OpenCV's default pool, on a shared 2-core machine).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

log = logging.getLogger(__name__)

_CROSS: Final = ndimage.generate_binary_structure(2, 1)

_cv2: Any = None
_tried = False


def _opencv() -> Any:
    """The ``cv2`` module with its thread pool off, or None where OpenCV is missing or will not load.

    Imported on first use, not with this module: it takes a sizeable
    fraction of a second, which command-line tools should not pay for.
    """
    global _cv2, _tried
    if not _tried:
        _tried = True
        try:
            import cv2
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install's OSError
            log.debug("OpenCV not available (%s); labelling with scipy.ndimage", exc)
        else:
            cv2.setNumThreads(1)
            _cv2 = cv2
    return _cv2


def _label_cv2(walk: NDArray[np.uint8], out: NDArray[np.int32] | None = None) -> tuple[NDArray[np.int32], int]:
    if out is None:
        n, labels = _cv2.connectedComponentsWithAlgorithm(walk, 4, _cv2.CV_32S, _cv2.CCL_SAUF)
    else:
        n, labels = _cv2.connectedComponentsWithAlgorithm(walk, 4, _cv2.CV_32S, _cv2.CCL_SAUF, out)
    return labels, n - 1  # OpenCV counts the background as label 0


def _label_scipy(walk: NDArray[np.uint8], out: NDArray[np.int32] | None = None) -> tuple[NDArray[np.int32], int]:
    if out is None:
        labels, n = ndimage.label(walk, structure=_CROSS)
        return labels, int(n)
    n = ndimage.label(walk, structure=_CROSS, output=out)
    return out, int(n)


def _label_first(walk: NDArray[np.uint8], out: NDArray[np.int32] | None = None) -> tuple[NDArray[np.int32], int]:
    backend()
    return label4(walk, out)


_LABELLERS: Final = {"opencv": _label_cv2, "scipy": _label_scipy}
_BACKEND = ""

#: label4(walk, out=None) -> (labels, regions): ``walk`` is a 2-D C-contiguous uint8 0/1 mask;
#: ``out``, when given, is a C-contiguous int32 array of walk's shape that receives the labels.
label4 = _label_first


def backend() -> str:
    """Which labeller runs: "opencv" when OpenCV loads, else "scipy"."""
    if not _BACKEND:
        use_backend("opencv" if _opencv() is not None else "scipy")
    return _BACKEND


def available() -> list[str]:
    """The labellers this environment can run."""
    return ["scipy"] + (["opencv"] if _opencv() is not None else [])


def threads() -> int:
    """Threads the labeller may use (1: OpenCV's pool is switched off; scipy never threads)."""
    return int(_cv2.getNumThreads()) if backend() == "opencv" else 1


def use_backend(name: str) -> str:
    """Switch the labeller (tests compare the two); returns the previous name ("" if none was chosen yet)."""
    global _BACKEND, label4
    if name not in available():
        raise ValueError(f"unknown or unavailable labeller {name!r}; available: {', '.join(available())}")
    old, _BACKEND = _BACKEND, name
    label4 = _LABELLERS[name]
    return old


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


_scratch = threading.local()


def scratch(name: str, n: int, shape: tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """A reusable ``(n, *shape)`` zero-initialised array for this thread (contents persist between calls).

    Stacked checks allocate a few megabytes per chunk; fresh buffers of that
    size come from ``mmap`` and cost a page fault per 4 KiB on every call
    (about as much as the labelling itself), so each thread keeps its own.
    Rows are never cleared: callers overwrite what they read.
    """
    dt = np.dtype(dtype)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    arr = bufs.get(name)
    if arr is None or arr.shape[1:] != shape or arr.dtype != dt or arr.shape[0] < n:
        arr = bufs[name] = np.zeros((max(n, 1), *shape), dtype=dt)
    return arr[:n]


def mosaic(n: int, h: int, w: int) -> NDArray[np.uint8]:
    """An all-zero ``(n, h + 1, w)`` board: level ``k``'s mask goes in ``[k, :h]``, row ``h`` stays 0."""
    return np.zeros((n, h + 1, w), dtype=np.uint8)


def label_mosaic(board: NDArray[np.uint8], out: NDArray[np.int32] | None = None
                 ) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
    """Label a filled :func:`mosaic`: the ``(n, h, w)`` labels (a view) and each level's region count.

    ``out`` (optional, C-contiguous int32, ``board.size`` elements or more) receives the labels.
    """
    n, h1, w = board.shape
    flat, _ = label4(board.reshape(n * h1, w), None if out is None else out.reshape(-1)[:n * h1 * w].reshape(n * h1, w))
    labels = flat.reshape(n, h1, w)[:, :h1 - 1]
    top = np.maximum.accumulate(labels.max(axis=(1, 2))) if n else np.zeros(0, dtype=np.int32)
    return labels, np.diff(top, prepend=0)



def region_counts(board: NDArray[np.uint8], out: NDArray[Any]) -> NDArray[np.intp]:
    """Each level's region count in an ``(n, h, w)`` board labelled as one image; labels go to ``out``.

    No region may run from one level into the next: use a :func:`mosaic`,
    or levels whose bottom rows are all wall (0), as the batch screen does.
    ``out`` is int32, or uint16 (half the memory traffic; OpenCV refuses a
    board with 65,535 regions or more in 16 bits, and the board is then
    labelled again in 32).
    """
    n, h1, w = board.shape
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    img = board.reshape(n * h1, w)
    flat: Any = None
    if out.dtype == np.uint16:
        if backend() == "opencv":
            try:
                flat = _cv2.connectedComponentsWithAlgorithm(img, 4, _cv2.CV_16U, _cv2.CCL_SAUF, out.reshape(n * h1, w))[1]
            except _cv2.error:
                flat = None
        if flat is None:
            flat, _ = label4(img)
    else:
        flat, _ = label4(img, out.reshape(n * h1, w))
    top = np.maximum.accumulate(np.maximum.reduce(flat.reshape(n, h1 * w), axis=1))
    return np.diff(top.astype(np.intp), prepend=0)
