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


# ------------------------------------------------------------ PostgreSQL store
#
# Fixtures for the store on both backends: a PostgreSQL server this test session starts itself.
#
# ``store_target`` is what ``Store.open`` gets: a SQLite file, or the URL of a
# fresh database on a temporary PostgreSQL server (``generator.store.pg_temp``:
# the machine's own ``initdb``/``pg_ctl``, a temporary directory, a free port
# on 127.0.0.1, stopped at the end of the session).  Where the binaries or
# psycopg are missing the PostgreSQL half is skipped with the reason, and fails
# in CI (``CI=true``), which must run it.


def _unavailable() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg 3 is not installed (pip install 'dungeon-forge[postgres]')"
    from generator.store.pg_temp import missing_reason

    return missing_reason()


def require_postgres() -> None:
    """Skip (or, in CI, fail) the test when no PostgreSQL server can be started here."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the PostgreSQL store tests: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole test session (started on first use)."""
    require_postgres()
    from generator.store.pg_temp import TempPostgres

    with TempPostgres() as pg:
        yield pg


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty database (dropped after the test)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request, tmp_path):
    """``Store.open(store_target)`` opens a fresh store on each backend in turn."""
    if request.param == "sqlite":
        return tmp_path / "forge.db"
    return request.getfixturevalue("pg_url")
