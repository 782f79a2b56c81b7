"""Fixtures for the store on both backends: a PostgreSQL server this test session starts itself.

``store_target`` is what ``Store.open`` gets: a SQLite file, or the URL of a
fresh database on a temporary PostgreSQL server (``generator.store.pg_temp``:
the machine's own ``initdb``/``pg_ctl``, a temporary directory, a free port
on 127.0.0.1, stopped at the end of the session).  Where the binaries or
psycopg are missing the PostgreSQL half is skipped with the reason, and fails
in CI (``CI=true``), which must run it.
"""

from __future__ import annotations

import os

import pytest


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
