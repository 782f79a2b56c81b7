"""Background training for a game: start ``python -m generator.train --if-needed`` and return at once.

This is what a game calls between play sessions.  It starts the training
command line as a separate, low-priority process and imports neither the
trainer nor torch, so games depend on the generator's public API only and
the trainer stays an optional extra (``tests/test_layers.py`` checks that no
game imports ``trainer`` or a CLI module).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["launch_background"]


def launch_background(data_dir: str | os.PathLike[str] | None = None, *, site: str | None = None,
                      preset: str = "quick", log_path: str | os.PathLike[str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m generator.train --if-needed`` detached, at low priority, and return at once.

    The game calls this between sessions; the child decides whether there is
    enough new data and whether the machine is idle.  Output goes to
    ``log_path`` (default ``<data dir>/runs/background.log``).
    """
    from generator.paths import data_dir as resolve

    root = resolve(data_dir)
    log_file = Path(log_path) if log_path else root / "runs" / "background.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "generator.train", "--if-needed", "--quiet", "--json", "--preset", preset,
           "--data-dir", str(root)]
    if site:
        cmd += ["--site", site]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with open(log_file, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=(lambda: os.nice(10)) if os.name == "posix" else None)
