"""The store's schema as an ordered list of migrations, one list per SQL dialect.

SQLite: ``PRAGMA user_version`` holds how many migrations a database has had.
PostgreSQL: the ``schema_version`` row of ``store_meta`` does.  Each migration
runs in one transaction together with the version bump (``BEGIN IMMEDIATE`` on
SQLite; on PostgreSQL under a transaction-scoped advisory lock), so a crash
mid-migration leaves the previous version intact and two processes opening a
fresh store at once cannot both apply it.  Migrations are append-only: never
edit a released one, add the next, to *both* lists (a test compares the
tables and columns the two produce).
"""

from __future__ import annotations

from typing import Final

#: JSON-encoded columns of ``calls`` (msgspec JSON text).
CALL_JSON_COLUMNS: Final = ("args", "messages", "output_schema", "result", "failures")

#: Columns of ``calls`` in the order of :class:`generator.store.records.CallRecord`;
#: fields a newer CallRecord adds before a migration lands go to ``extra``.
CALL_COLUMNS: Final = (
    "call_id",
    "site",
    "backend",
    "model",
    "model_version",
    "args",
    "messages",
    "output_schema",
    "raw_output",
    "result",
    "valid",
    "failures",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "error",
    "created",
    "session_id",
    "request_id",
    "attempt",
    "served",
    "confidence",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the first schema
    (
        """
        CREATE TABLE calls (
            call_id           TEXT PRIMARY KEY,
            site              TEXT NOT NULL,
            backend           TEXT NOT NULL,
            model             TEXT,
            model_version     TEXT,
            args              TEXT NOT NULL DEFAULT '{}',
            messages          TEXT,
            output_schema     TEXT,
            raw_output        TEXT,
            result            TEXT,
            valid             INTEGER,
            failures          TEXT NOT NULL DEFAULT '[]',
            latency_ms        REAL NOT NULL DEFAULT 0,
            prompt_tokens     INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd          REAL NOT NULL DEFAULT 0,
            error             TEXT,
            created           REAL NOT NULL,
            session_id        TEXT,
            request_id        TEXT,
            attempt           INTEGER NOT NULL DEFAULT 1,
            served            INTEGER NOT NULL DEFAULT 0,
            confidence        REAL,
            extra             TEXT
        )
        """,
        "CREATE INDEX calls_site_created ON calls(site, created)",
        "CREATE INDEX calls_request ON calls(request_id)",
        "CREATE INDEX calls_backend ON calls(backend)",
        """
        CREATE TABLE events (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            type          TEXT NOT NULL,
            generation_id TEXT,
            level_id      TEXT,
            turn          INTEGER,
            created       REAL NOT NULL,
            payload       TEXT NOT NULL
        )
        """,
        "CREATE INDEX events_generation ON events(generation_id)",
        """
        CREATE TABLE fun (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            generation_id TEXT NOT NULL,
            score         REAL NOT NULL,
            features      TEXT NOT NULL DEFAULT '{}',
            created       REAL NOT NULL
        )
        """,
        "CREATE INDEX fun_generation ON fun(generation_id)",
        """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            started    REAL NOT NULL,
            info       TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE TABLE site_state (
            site     TEXT PRIMARY KEY,
            state    TEXT NOT NULL,
            version  TEXT,
            updated  REAL NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE TABLE site_events (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            site     TEXT NOT NULL,
            kind     TEXT NOT NULL,
            version  TEXT,
            created  REAL NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX site_events_site ON site_events(site, created)",
        """
        CREATE TABLE ratings (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            generation_id TEXT NOT NULL,
            scores        TEXT NOT NULL,
            comment       TEXT NOT NULL DEFAULT '',
            rater         TEXT,
            created       REAL NOT NULL
        )
        """,
        "CREATE INDEX ratings_generation ON ratings(generation_id)",
    ),
)

#: The same migrations in PostgreSQL's dialect.  ``calls.rowid`` stands in for
#: SQLite's implicit rowid (insertion order; a replaced call moves to the end),
#: ``BIGSERIAL`` for ``AUTOINCREMENT`` and ``DOUBLE PRECISION`` for ``REAL``
#: (PostgreSQL's ``REAL`` is 4 bytes and would round timestamps).
PG_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the first schema
    (
        """
        CREATE TABLE calls (
            rowid             BIGSERIAL NOT NULL UNIQUE,
            call_id           TEXT PRIMARY KEY,
            site              TEXT NOT NULL,
            backend           TEXT NOT NULL,
            model             TEXT,
            model_version     TEXT,
            args              TEXT NOT NULL DEFAULT '{}',
            messages          TEXT,
            output_schema     TEXT,
            raw_output        TEXT,
            result            TEXT,
            valid             INTEGER,
            failures          TEXT NOT NULL DEFAULT '[]',
            latency_ms        DOUBLE PRECISION NOT NULL DEFAULT 0,
            prompt_tokens     BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd          DOUBLE PRECISION NOT NULL DEFAULT 0,
            error             TEXT,
            created           DOUBLE PRECISION NOT NULL,
            session_id        TEXT,
            request_id        TEXT,
            attempt           INTEGER NOT NULL DEFAULT 1,
            served            INTEGER NOT NULL DEFAULT 0,
            confidence        DOUBLE PRECISION,
            extra             TEXT
        )
        """,
        "CREATE INDEX calls_site_created ON calls(site, created)",
        "CREATE INDEX calls_request ON calls(request_id)",
        "CREATE INDEX calls_backend ON calls(backend)",
        """
        CREATE TABLE events (
            id            BIGSERIAL PRIMARY KEY,
            type          TEXT NOT NULL,
            generation_id TEXT,
            level_id      TEXT,
            turn          BIGINT,
            created       DOUBLE PRECISION NOT NULL,
            payload       TEXT NOT NULL
        )
        """,
        "CREATE INDEX events_generation ON events(generation_id)",
        """
        CREATE TABLE fun (
            id            BIGSERIAL PRIMARY KEY,
            generation_id TEXT NOT NULL,
            score         DOUBLE PRECISION NOT NULL,
            features      TEXT NOT NULL DEFAULT '{}',
            created       DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX fun_generation ON fun(generation_id)",
        """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            started    DOUBLE PRECISION NOT NULL,
            info       TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE TABLE site_state (
            site     TEXT PRIMARY KEY,
            state    TEXT NOT NULL,
            version  TEXT,
            updated  DOUBLE PRECISION NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE TABLE site_events (
            id       BIGSERIAL PRIMARY KEY,
            site     TEXT NOT NULL,
            kind     TEXT NOT NULL,
            version  TEXT,
            created  DOUBLE PRECISION NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX site_events_site ON site_events(site, created)",
        """
        CREATE TABLE ratings (
            id            BIGSERIAL PRIMARY KEY,
            generation_id TEXT NOT NULL,
            scores        TEXT NOT NULL,
            comment       TEXT NOT NULL DEFAULT '',
            rater         TEXT,
            created       DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX ratings_generation ON ratings(generation_id)",
    ),
)

#: Every table the migrations create, with the key that orders its rows (for
#: ``python -m generator.store`` copies and checksums).
TABLES: Final[dict[str, str]] = {
    "calls": "call_id",
    "events": "id",
    "fun": "id",
    "sessions": "session_id",
    "site_state": "site",
    "site_events": "id",
    "ratings": "id",
}

#: The columns of every table, as both dialects name them (``calls.rowid`` aside).
TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "calls": (*CALL_COLUMNS, "extra"),
    "events": ("id", "type", "generation_id", "level_id", "turn", "created", "payload"),
    "fun": ("id", "generation_id", "score", "features", "created"),
    "sessions": ("session_id", "started", "info"),
    "site_state": ("site", "state", "version", "updated", "evidence"),
    "site_events": ("id", "site", "kind", "version", "created", "evidence"),
    "ratings": ("id", "generation_id", "scores", "comment", "rater", "created"),
}

SCHEMA_VERSION: Final = len(MIGRATIONS)
assert len(PG_MIGRATIONS) == SCHEMA_VERSION, "add every migration to both dialects"
