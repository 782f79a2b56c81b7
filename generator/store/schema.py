"""The store's SQLite schema as an ordered list of migrations.

``PRAGMA user_version`` holds how many migrations a database has had.  Each
migration runs in one ``BEGIN IMMEDIATE`` transaction together with the
version bump, so a crash mid-migration leaves the previous version intact and
two processes opening a fresh file at once cannot both apply it.  Migrations
are append-only: never edit a released one, add the next.
"""

from __future__ import annotations

from typing import Final

#: JSON-encoded columns of ``calls`` (msgspec JSON text).
CALL_JSON_COLUMNS: Final = ("args", "messages", "output_schema", "result", "failures")

#: Columns of ``calls`` in the order of :class:`generator.records.CallRecord`;
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

SCHEMA_VERSION: Final = len(MIGRATIONS)
