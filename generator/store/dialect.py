"""What differs between the store's two databases: SQLite (embedded) and PostgreSQL (a server).

:class:`generator.store.Store` writes its SQL once, in SQLite's spelling with
``?`` placeholders; a :class:`Dialect` connects, translates placeholders,
spells an upsert, runs a transaction and applies the migrations of its
database.  PostgreSQL goes through psycopg 3 (the ``postgres`` extra), imported
only when a ``postgresql://`` URL is used.

>>> SQLITE.upsert("site_state", ("site", "state"), "site")
'INSERT OR REPLACE INTO site_state (site, state) VALUES (?, ?)'
>>> POSTGRES.sql(POSTGRES.upsert("site_state", ("site", "state"), "site"))
'INSERT INTO site_state (site, state) VALUES (%s, %s) ON CONFLICT (site) DO UPDATE SET state = EXCLUDED.state'
>>> redact_url("postgresql://forge:hunter2@db.example:5432/forge")
'postgresql://forge:***@db.example:5432/forge'
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from generator.errors import ConfigError, StoreError
from generator.settings import STORE_URL_ENV, store_settings
from generator.store.schema import MIGRATIONS, PG_MIGRATIONS, SCHEMA_VERSION, TABLES

log = logging.getLogger(__name__)

__all__ = ["POSTGRES", "SQLITE", "Dialect", "configured_url", "StoreUnreachable", "is_postgres_url", "redact_url", "sqlite_path_of"]

#: Environment variable naming the store's database URL (beats ``[store] url`` in forge.toml).
URL_ENV: Final = STORE_URL_ENV
_PG_SCHEMES: Final = ("postgresql", "postgres")
#: Key of the transaction-scoped advisory lock that serialises migrations on PostgreSQL.
_MIGRATION_LOCK: Final = 0x466F726765  # "Forge"
#: Server answers that mean "not now" rather than "not you" (the store waits for these).
_TRANSIENT: Final = ("starting up", "shutting down", "in recovery", "too many clients", "not yet accepting",
                     "terminating connection", "remaining connection slots")
#: A plain multi-row insert (no upsert, no RETURNING) of at least this many rows goes through COPY.
_COPY_FROM_ROWS: Final = 8
_PLAIN_INSERT: Final = re.compile(r"INSERT INTO (?P<table>\w+) \((?P<cols>[\w, ]+)\) VALUES \((?:%s,? ?)+\)")
_PG_HINT: Final = "PostgreSQL stores need psycopg 3: pip install 'dungeon-forge[postgres]'"


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.split(":", 1)[0].lower() in _PG_SCHEMES and "://" in value


def sqlite_path_of(value: str) -> Path | None:
    """``sqlite:///abs/path`` or ``sqlite:relative`` -> a path; anything else -> None."""
    if not value.lower().startswith("sqlite:"):
        return None
    rest = value[len("sqlite:"):]
    if rest.startswith("///"):
        rest = "/" + rest[3:].lstrip("/")
    elif rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise ConfigError(f"store URL {value!r} names no file; use sqlite:///path/to/forge.db")
    return Path(unquote(rest)).expanduser()


def redact_url(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` parameter) replaced by ``***``
    (what logs, errors and reports show); a URL too broken to split shows as a placeholder."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable store URL>"
    netloc = parts.netloc
    user, at, hostport = netloc.rpartition("@")
    if at and ":" in user:  # the raw text: a bad port must not stop the redaction
        netloc = f"{user.split(':', 1)[0]}:***@{hostport}"
    query = "&".join(f"{k}=***" if k.strip().lower() == "password" else f"{k}{eq}{v}"
                     for k, eq, v in (item.partition("=") for item in parts.query.split("&"))) \
        if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    user = parts.netloc.rpartition("@")[0]
    if ":" in user:
        return user.split(":", 1)[1]
    for key, _, value in (item.partition("=") for item in parts.query.split("&")):
        if key.strip().lower() == "password" and value:
            return value
    return None


def configured_url(data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> str | None:
    """The store URL the environment (``FORGE_DB_URL``) or ``[store] url`` in forge.toml names, else None (SQLite).

    ``data_dir`` is where forge.toml is looked for (default: ``$FORGE_HOME`` or
    the platform data dir; nothing is created).  The table is read and checked
    by :func:`generator.settings.store_settings`; here the URL's form is
    checked, and a message shows it only redacted.
    """
    from generator.paths import CONFIG_NAME
    from generator.paths import data_dir as resolve

    env = os.environ if env is None else env
    url = store_settings(data_dir, env=env).url.strip()
    if not url:
        return None
    origin = URL_ENV if env.get(URL_ENV, "").strip() else str(resolve(data_dir, create=False) / CONFIG_NAME)
    if not is_postgres_url(url) and sqlite_path_of(url) is None:
        raise ConfigError(
            f"store URL from {origin} is neither postgresql://… nor sqlite:///…: {redact_url(url)!r}"
        )
    return url


class Dialect:
    """SQLite's spelling; :class:`_Postgres` overrides what differs."""

    name = "sqlite"
    migrations = MIGRATIONS

    def __init__(self) -> None:
        self._sql: dict[str, str] = {}

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def sql(self, statement: str) -> str:
        return statement

    def upsert(self, table: str, cols: tuple[str, ...], key: str) -> str:
        return f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

    def text(self, value: str) -> str:
        """A text value as this database can store it."""
        return value

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def executemany(self, conn: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(statement, rows)

    def is_disconnect(self, exc: BaseException, conn: Any) -> bool:
        """True when ``exc`` means the server went away (the write is buffered, not lost)."""
        return False

    def atomic_alone(self, statement: str, rows: list[tuple[Any, ...]]) -> bool:
        """True when this write is one statement, atomic without BEGIN/COMMIT (two round trips fewer)."""
        return False

    def schema_version(self, conn: Any) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, conn: Any, where: str) -> None:
        version = self.schema_version(conn)
        _check_newer(version, where)
        while version < SCHEMA_VERSION:
            with self.transaction(conn):
                # Another process may have migrated while we waited for the write lock.
                version = self.schema_version(conn)
                if version < SCHEMA_VERSION:
                    for statement in self.migrations[version]:
                        conn.execute(statement)
                    version += 1
                    conn.execute(f"PRAGMA user_version = {version}")
            log.info("store %s migrated to schema version %d", where, version)

    def reset_sequences(self, conn: Any) -> None:
        """After rows were copied in with their ids: new ids continue after them (SQLite does this itself)."""


class _Postgres(Dialect):
    name = "postgresql"
    migrations = PG_MIGRATIONS

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def sql(self, statement: str) -> str:
        out = self._sql.get(statement)
        if out is None:
            if "%" in statement:
                raise ValueError("store SQL must not contain '%' (psycopg placeholders)")
            out = self._sql[statement] = statement.replace("?", "%s")
        return out

    def upsert(self, table: str, cols: tuple[str, ...], key: str) -> str:
        sets = [f"{c} = EXCLUDED.{c}" for c in cols if c != key]
        if table == "calls":  # like SQLite's REPLACE: a re-recorded call moves to the end
            sets.append("rowid = nextval(pg_get_serial_sequence('calls', 'rowid'))")
        return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}")

    def text(self, value: str) -> str:
        # PostgreSQL text cannot hold NUL; SQLite can.  JSON columns escape it anyway.
        return value.replace("\x00", "\ufffd") if "\x00" in value else value

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        with conn.transaction():
            yield conn

    def atomic_alone(self, statement: str, rows: list[tuple[Any, ...]]) -> bool:
        # One row is one statement; a COPY is one statement however many rows it carries.
        return len(rows) == 1 or (len(rows) >= _COPY_FROM_ROWS and _PLAIN_INSERT.fullmatch(statement) is not None)

    def executemany(self, conn: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        plain = _PLAIN_INSERT.fullmatch(statement) if len(rows) >= _COPY_FROM_ROWS else None
        with conn.cursor() as cur:
            if plain is None:
                cur.executemany(statement, rows)
                return
            # A telemetry batch: COPY is ~4x faster than executemany for 140 rows (docs/decisions.md D24).
            with cur.copy(f"COPY {plain['table']} ({plain['cols']}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def is_disconnect(self, exc: BaseException, conn: Any) -> bool:
        import psycopg

        if isinstance(exc, StoreUnreachable):
            return True
        if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return False
        return conn is None or conn.closed or conn.broken

    def schema_version(self, conn: Any) -> int:
        row = conn.execute(
            "SELECT value FROM store_meta WHERE key = 'schema_version'"
        ).fetchone() if _has_table(conn, "store_meta") else None
        return int(row[0]) if row else 0

    def migrate(self, conn: Any, where: str) -> None:
        _check_newer(self.schema_version(conn), where)
        with conn.transaction():
            # Held until COMMIT: a second process opening a fresh database waits here, then sees the new version.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = self.schema_version(conn)
            _check_newer(version, where)
            start = version
            while version < SCHEMA_VERSION:
                for statement in self.migrations[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (str(version),),
                )
        if version != start:
            log.info("store %s migrated to schema version %d", where, version)

    def reset_sequences(self, conn: Any) -> None:
        for table, serial in (*((t, "id") for t, k in TABLES.items() if k == "id"), ("calls", "rowid")):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{serial}'), "
                f"COALESCE((SELECT MAX({serial}) FROM {table}), 0) + 1, false)"
            )

    def connect(self, url: str, *, connect_timeout_s: float) -> Any:
        try:
            import psycopg
        except ImportError:
            raise StoreError(_PG_HINT) from None
        if "," not in url.partition("?")[0]:  # one host (libpq's multi-host lists are not urllib's business)
            try:
                urlsplit(url).port
            except ValueError as exc:  # a typo, not an outage: buffering would wait for ever
                raise StoreError(f"store URL {redact_url(url)} is malformed: {exc}") from None
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s)))
        except psycopg.Error as exc:
            message = _clean(str(exc), url)
            if "FATAL:" in message and not any(t in message for t in _TRANSIENT):
                # The server answered and refused: a wrong role, password or database name.
                raise StoreError(f"store {redact_url(url)} refused the connection: {message}") from None
            raise StoreUnreachable(message) from None


class StoreUnreachable(StoreError):
    """The PostgreSQL server cannot be reached now (refused, timed out, shutting down)."""


def _has_table(conn: Any, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def _check_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {where} has schema version {version}, newer than this dungeon-forge "
            f"understands ({SCHEMA_VERSION}); upgrade dungeon-forge or use another --data-dir"
        )


def _clean(message: str, url: str) -> str:
    """A driver message without the password (psycopg does not print it, but be sure) on one line."""
    password = url_password(url)
    if password:
        message = message.replace(password, "***")
    return " ".join(message.split())


SQLITE: Final = Dialect()
POSTGRES: Final = _Postgres()
