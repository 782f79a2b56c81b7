"""Reading files named on a command line: regular files only, never past a size cap.

Every CLI that reads a file a user names (a spec, a spec list, a preset, a
settings file) goes through :func:`read_file_bytes` / :func:`read_file_text`,
the rules ``python -m generator.validate`` applies to its input:

* only a regular file is opened for reading (a FIFO, a device such as
  ``/dev/zero``, a socket or a directory is refused with a message, never
  read: a FIFO would hang, a device would read until memory runs out);
* the file is opened non-blocking and checked again on the open descriptor,
  so one swapped for a FIFO between the check and the open cannot hang;
* at most ``max_bytes`` are read (plus one byte to tell "over the cap"), so a
  file that grows, or a ``/proc`` file that reports size 0, stays bounded;
* text is UTF-8; anything else is a one-line error naming the byte.

A refusal raises :class:`InputFileError` (a ``ValueError``) whose text names
the file and says what to do; CLIs turn it into exit status 2.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "spec.json")
...     _ = open(p, "w").write('{"width": 16}')
...     read_file_text(p, max_bytes=100, what="spec")
'{"width": 16}'
>>> read_file_text("/dev/zero", max_bytes=100, what="spec")
Traceback (most recent call last):
...
generator.guards.inputs.InputFileError: spec /dev/zero is not a regular file (a device, FIFO or socket); give a file
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

__all__ = ["MAX_CONFIG_BYTES", "MAX_LIST_BYTES", "MAX_SPEC_BYTES", "InputFileError", "read_file_bytes",
           "read_file_text"]

#: A spec is one small JSON object.
MAX_SPEC_BYTES: Final[int] = 64_000
#: A settings or preset file (forge.toml, a training preset YAML).
MAX_CONFIG_BYTES: Final[int] = 1_000_000
#: A list of specs or rows (evaluate --specs, a report's levels.jsonl).
MAX_LIST_BYTES: Final[int] = 200_000_000


class InputFileError(ValueError):
    """A named input file cannot be used; the text says which and why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file (a device, FIFO or socket)"


def read_file_bytes(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``), or :class:`InputFileError`."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"{what} {p} is {_kind(st.st_mode)}; give a file")
    if st.st_size > max_bytes:
        raise InputFileError(f"{what} {p} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the stat and the open
            raise InputFileError(f"{what} {p} is {_kind(st.st_mode)}; give a file")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise InputFileError(f"{what} {p} is over {max_bytes:,} bytes; the limit is {max_bytes:,}")
    return data


def read_file_text(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file") -> str:
    """:func:`read_file_bytes` decoded as UTF-8 (a BOM is dropped), or :class:`InputFileError`."""
    data = read_file_bytes(path, max_bytes=max_bytes, what=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
