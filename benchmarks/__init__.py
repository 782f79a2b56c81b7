"""Dungeon Forge benchmarks: `python -m benchmarks.NAME --json` (seeded, with a baseline ratio)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_fake(name: str, benchmark: str) -> ModuleType:
    """``tests/fakes/<name>.py`` through the tests' own loader; a clear exit when there is no source checkout."""
    path = ROOT / "tests" / "fakes" / f"{name}.py"
    if not path.is_file():  # an installed package has no tests/
        raise SystemExit(f"benchmarks.{benchmark} needs {path} (run it from a source checkout)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.fakes.jac_support import load_fake as load

    return load(name)
