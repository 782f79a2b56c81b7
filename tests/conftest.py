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
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "FORGE_TEACHER",
                "FORGE_DB_URL", "FORGE_DB_BUFFER_ROWS"):
        monkeypatch.delenv(key, raising=False)
    yield home


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on a shared 2-core box two threads contend and run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


from tests.fakes.jac_support import load_fake  # noqa: E402  (one loader for the fakes)


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory):
    """An untrained micro-1m level student (tests/fakes/tiny_student.py), built once per run: copy it before changing it."""
    pytest.importorskip("torch")
    return load_fake("tiny_student").build_tiny_student(tmp_path_factory.mktemp("tiny-student") / "student")
