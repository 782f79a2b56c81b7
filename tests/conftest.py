"""Suite-wide fixtures.  Every test gets its own data dir so nothing touches ~/."""

from __future__ import annotations

import os

import pytest

# Headless rendering must be chosen before arcade is imported anywhere.
os.environ.setdefault("ARCADE_HEADLESS", "1")

# Render tests import arcade and trainer tests import torch in the same process:
# triton's native library must be loaded before pyglet's EGL stack (see
# engine/render/arcade_import.py), so load it through the renderer's guard first.
from engine.render.arcade_import import _preload_triton  # noqa: E402

_preload_triton()


@pytest.fixture(autouse=True)
def _forge_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("forge_home")
    monkeypatch.setenv("FORGE_HOME", str(home))
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "FORGE_TEACHER"):
        monkeypatch.delenv(key, raising=False)
    yield home
