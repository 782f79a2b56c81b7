"""The store: every generation call, telemetry, fun scores, routing state, ratings.

Size: over 400 lines on purpose. One class with one lock and one transaction
discipline for every table; what differs between SQLite and PostgreSQL is in
:mod:`generator.store.dialect`.

SQLite by default; PostgreSQL when a ``postgresql://`` URL is configured
(:mod:`generator.store.dialect` holds what differs).  On SQLite one
:class:`Store` wraps one connection in WAL mode.  Every public method holds
the store's lock and runs in its own transaction, so the game thread and the
session's prefetch thread can share a store, and a trainer process can read
(or write) the same file at the same time (WAL: readers never block the
writer; a writer waits up to ``busy_timeout_ms`` for another).  A process
killed mid-write loses only the transaction it was in.  On PostgreSQL the
server takes many writers at once; when it is away (at open or mid-session),
writes wait in a bounded in-memory buffer and are written when it is back.

>>> import tempfile, pathlib
>>> from generator.store.records import CallRecord
>>> with Store.open(pathlib.Path(tempfile.mkdtemp()) / "forge.db") as store:
...     store.record_call(CallRecord(site="demo:f#00000000", backend="mock", valid=True))
...     [s.valid_share for s in store.site_stats()]
[1.0]
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from generator.errors import StoreError
from generator.store.records import CallRecord
from generator.store.dialect import (
    POSTGRES,
    SQLITE,
    Dialect,
    StoreUnreachable,
    configured_url,
    is_postgres_url,
    redact_url,
    sqlite_path_of,
)
from generator.store.redact import scrub, secret_values
from generator.store.schema import CALL_COLUMNS, CALL_JSON_COLUMNS, SCHEMA_VERSION, TABLES

log = logging.getLogger(__name__)

__all__ = [
    "LOCAL_BACKENDS",
    "Rating",
    "SiteEvent",
    "SiteState",
    "SiteStats",
    "Store",
    "StoredCall",
    "StoredEvent",
]

#: Backends that run on the player's machine without an API (counted as "local").
LOCAL_BACKENDS: Final = frozenset({"student", "local"})
#: Backends whose calls cost nothing and are not a teacher (excluded from "cost saved").
_FREE_BACKENDS: Final = LOCAL_BACKENDS | {"procedural", "mock"}
_PAGE: Final = 500
_JSON_DEFAULTS: Final[dict[str, Any]] = {"args": {}, "failures": []}  # NOT NULL columns
_RUBRIC_RANGE: Final = (1, 5)
#: Environment variable: rows kept in memory while a PostgreSQL server is unreachable.
BUFFER_ENV: Final = "FORGE_DB_BUFFER_ROWS"
_DEFAULT_BUFFER_ROWS: Final = 10_000
_RETRY_MIN_S: Final = 0.5  # reconnect backoff while the server is away: 0.5 s doubling to 30 s
_RETRY_MAX_S: Final = 30.0
_INSERT_EVENT: Final = "INSERT INTO events (type, generation_id, level_id, turn, created, payload) VALUES (?,?,?,?,?,?)"

#: One write: a statement (SQLite spelling) and its rows.
_Op = tuple[str, list[tuple[Any, ...]]]

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def _set_wal(conn: sqlite3.Connection, wait_s: float) -> str:
    """``PRAGMA journal_mode = WAL``, retried within ``wait_s``: the journal mode change takes an exclusive lock
    and SQLite reports "database is locked" at once (no busy handler) when another connection is opening the
    same new file, as several game processes or threads starting together do.  The mode is kept in the file,
    so once one connection has set it the others read it back."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


class StoredCall(msgspec.Struct, frozen=True):
    """A recorded call plus the fun score of the level it produced (mean over plays)."""

    record: CallRecord
    fun: float | None = None
    fun_features: dict[str, float] | None = None  #: features of the latest scored play
    plays: int = 0  #: how many scored plays the mean is over


class StoredEvent(msgspec.Struct, frozen=True):
    """A telemetry event as stored: its type tag, join keys and decoded payload."""

    id: int
    type: str
    generation_id: str | None
    level_id: str | None
    turn: int | None
    created: float
    payload: dict[str, Any]


class SiteState(msgspec.Struct, frozen=True):
    """The routing state of one call site (written by :mod:`generator.routing`)."""

    site: str
    state: str
    version: str | None
    updated: float
    evidence: dict[str, Any]


class SiteEvent(msgspec.Struct, frozen=True):
    """A promotion, rollback or other state change at a site, with its evidence."""

    id: int
    site: str
    kind: str
    version: str | None
    created: float
    evidence: dict[str, Any]


class Rating(msgspec.Struct, frozen=True):
    """A person's rubric scores (1-5 each) for one generated level."""

    id: int
    generation_id: str
    scores: dict[str, int]
    comment: str
    rater: str | None
    created: float


class SiteStats(msgspec.Struct, frozen=True):
    """What ``python -m generator.sites`` shows for one call site."""

    site: str
    calls: int  #: every recorded call (each facade attempt counts)
    requests: int  #: distinct facade requests (calls without a request id count alone)
    judged: int  #: calls with a validity verdict
    valid: int
    valid_share: float | None  #: valid / judged
    served_by: str | None  #: backend of the most recent served call
    state: str | None  #: routing state, if the site has one
    version: str | None  #: model version the routing state refers to
    local_calls: int
    local_share: float  #: share of served calls answered locally (student)
    latency_p50_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cost_saved_usd: float  #: local served calls x mean cost of a teacher call at this site
    fun_mean: float | None


class Store:
    """The generator's store, on SQLite or PostgreSQL.  Use :meth:`open`; close it (or use ``with``)."""

    def __init__(
        self,
        conn: Any,
        path: Path | str,
        *,
        dialect: Dialect = SQLITE,
        url: str | None = None,
        buffer_rows: int | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._conn = conn
        #: The SQLite file, or the PostgreSQL URL without its password (what messages show).
        self.path = path
        self.backend: str = dialect.name  #: ``sqlite`` or ``postgresql``
        self._d = dialect
        self._url = url
        self._lock = threading.RLock()
        self._closed = False
        self._connect_timeout_s = connect_timeout_s
        # The outage buffer (PostgreSQL): writes made while the server is unreachable, oldest first.
        self._buffer: deque[_Op] = deque()
        self._buffered_rows = 0
        if buffer_rows is None:  # only a server can be away: SQLite ignores the setting
            buffer_rows = _buffer_limit() if dialect is POSTGRES else _DEFAULT_BUFFER_ROWS
        self._buffer_limit = int(buffer_rows)
        self._overflow = 0  #: rows dropped since the last flush (written as a store_buffer_overflow event)
        self._overflow_span: tuple[float, float] | None = None
        self.dropped_rows = 0  #: rows this Store dropped because its buffer was full or the server never came back
        self._down_since: float | None = None
        self._next_try = 0.0
        self._backoff = _RETRY_MIN_S
        self._states: dict[str, SiteState] = {}  # routing state last seen: served while the server is down
        self._migrated = dialect is SQLITE  # PostgreSQL: migrated on the first connection

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        configured: bool = True,
        busy_timeout_ms: int = 10_000,
        buffer_rows: int | None = None,
        connect_timeout_s: float = 5.0,
    ) -> Store:
        """Open (creating and migrating if needed) the store.

        Which database: ``url`` if given (``postgresql://…`` or
        ``sqlite:///file``); else ``path`` when it is such a URL string; else,
        with ``configured``, the URL in ``FORGE_DB_URL`` or in ``[store] url``
        of forge.toml (next to ``path``, or in the data dir); else the SQLite
        file ``path`` (``None``: ``forge.db`` in the data directory).  So the
        callers that open ``db_path(data_dir)`` all follow a configured server;
        ``configured=False`` opens the file whatever is configured.

        ``buffer_rows``: how many rows to keep in memory while a PostgreSQL
        server is unreachable (default ``FORGE_DB_BUFFER_ROWS`` or 10000).
        Raises :class:`StoreError` naming the file or the server (never its
        password) when it cannot be opened, is damaged, refuses the
        connection (role, password, database name) or was written by a newer
        dungeon-forge.  A PostgreSQL server that is merely down opens
        disconnected (one warning): writes are buffered, reads raise
        :class:`StoreUnreachable`, and the first connection migrates.
        """
        if url is None and isinstance(path, str) and (is_postgres_url(path) or path.lower().startswith("sqlite:")):
            url, path = path, None
        if url is None and configured:
            url = configured_url(None if path is None else Path(path).parent)
        if url is not None:
            as_file = sqlite_path_of(url)
            if as_file is not None:
                url, path = None, as_file
            elif not is_postgres_url(url):
                raise StoreError(f"store URL {redact_url(url)!r} is neither postgresql://… nor sqlite:///…")
        if url is not None:
            return cls._open_postgres(url, buffer_rows=buffer_rows, connect_timeout_s=connect_timeout_s)
        if path is None:
            from generator.paths import db_path

            path = db_path()
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                p, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {p}: {exc}; check the path and its permissions") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = _set_wal(conn, busy_timeout_ms / 1000)
            if str(mode).lower() != "wal":
                log.warning("store %s: journal mode is %s, not WAL (network filesystem?)", p, mode)
            # NORMAL in WAL mode survives a killed process; only a power cut can
            # lose the last commits (never corrupt the file).
            conn.execute("PRAGMA synchronous = NORMAL")
            SQLITE.migrate(conn, str(p))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"store {p} is not a usable SQLite database ({exc}); move the file aside "
                f"(a fresh store is created on the next start) or restore a backup"
            ) from None
        except StoreError:
            conn.close()
            raise
        return cls(conn, p, buffer_rows=buffer_rows)

    @classmethod
    def _open_postgres(cls, url: str, *, buffer_rows: int | None, connect_timeout_s: float) -> Store:
        """Connect and migrate; a server that is down (not one that refuses us) opens the store
        disconnected: writes wait in the buffer and the first connection migrates."""
        shown = redact_url(url)
        store = cls(None, shown, dialect=POSTGRES, url=url, buffer_rows=buffer_rows,
                    connect_timeout_s=connect_timeout_s)
        try:
            store._connection()
        except StoreUnreachable as exc:
            store._went_down(exc)
        return store

    def close(self) -> None:
        """Flush what the outage buffer holds (one last try) and close the connection."""
        with self._lock:
            if self._closed:
                return
            if self._buffer:
                self._next_try = 0.0
                try:
                    self._flush(self._connection())
                except StoreError:
                    lost = self._buffered_rows
                    self.dropped_rows += lost
                    log.warning("store %s still unreachable at close: %d buffered rows were not written",
                                self.path, lost)
                    self._buffer.clear()
                    self._buffered_rows = 0
            self._closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            try:
                return self._d.schema_version(self._connection())
            except self._d.errors as exc:
                raise self._failed("read", exc) from None

    def integrity_ok(self) -> bool:
        """SQLite: ``PRAGMA integrity_check`` passes.  PostgreSQL (which checks its own pages):
        the schema version is current and every table can be read."""
        if self._d is SQLITE:
            return self._read("PRAGMA integrity_check")[0][0] == "ok"
        if self.schema_version != SCHEMA_VERSION:
            return False
        for table in TABLES:
            self._read(f"SELECT COUNT(*) FROM {table}")
        return True

    def buffer_status(self) -> dict[str, Any]:
        """The outage buffer: rows waiting for the server, rows dropped, whether the server is reachable."""
        with self._lock:
            return {"buffered_rows": self._buffered_rows, "dropped_rows": self.dropped_rows,
                    "limit_rows": self._buffer_limit, "connected": self._down_since is None}

    # ------------------------------------------------------------------ calls

    def record_call(self, record: CallRecord) -> None:
        """Insert (or replace, same ``call_id``) one call."""
        self.record_calls((record,))

    def record_calls(self, records: Iterable[CallRecord]) -> int:
        """Insert many calls in one transaction (all or none); returns how many."""
        secrets = secret_values()
        rows = [_call_row(r, secrets) for r in records]
        if not rows:
            return 0
        self._write([(self._d.upsert("calls", (*CALL_COLUMNS, "extra"), "call_id"), rows)])
        return len(rows)

    def get_call(self, call_id: str) -> StoredCall | None:
        rows = self._select_calls("WHERE c.call_id = ?", [call_id], limit=1)
        return rows[0] if rows else None

    def iter_calls(
        self,
        site: str | None = None,
        *,
        valid_only: bool = False,
        backend: str | None = None,
        since: float | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        served: bool | None = None,
    ) -> Iterator[StoredCall]:
        """Calls in the order they were made, filtered; each with its level's fun score.

        Reads in pages, so iterating a large store stays cheap in memory and
        never holds the lock while the caller works.
        """
        where, params = [], []
        for column, value in (("site", site), ("backend", backend), ("session_id", session_id),
                              ("request_id", request_id)):
            if value is not None:
                where.append(f"c.{column} = ?")
                params.append(value)
        if valid_only:
            where.append("c.valid = 1")
        if served is not None:
            where.append("c.served = ?")
            params.append(int(served))
        if since is not None:
            where.append("c.created >= ?")
            params.append(float(since))
        last = -1
        while True:
            clause = " AND ".join([*where, "c.rowid > ?"])
            page = self._select_calls(f"WHERE {clause}", [*params, last], limit=_PAGE, with_rowid=True)
            for rowid, call in page:
                last = rowid
                yield call
            if len(page) < _PAGE:
                return

    def count_calls(self, site: str | None = None) -> int:
        if site is None:
            return int(self._read("SELECT COUNT(*) FROM calls")[0][0])
        return int(self._read("SELECT COUNT(*) FROM calls WHERE site = ?", (site,))[0][0])

    def sites(self) -> list[str]:
        """Every call site with at least one call or a routing state."""
        rows = self._read("SELECT site FROM calls UNION SELECT site FROM site_state ORDER BY 1")
        return [r[0] for r in rows]

    def export_jsonl(self, path: str | os.PathLike[str], site: str | None = None, **filters: Any) -> int:
        """Write one JSON object per call (the record plus ``fun``) to ``path``; returns the count."""
        n = 0
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            for sc in self.iter_calls(site, **filters):
                row = msgspec.to_builtins(sc.record)
                row["fun"] = sc.fun
                row["fun_plays"] = sc.plays
                fh.write(_json_encode(row) + b"\n")
                n += 1
        return n

    # ------------------------------------------------------------------ telemetry and fun

    def record_event(self, event: Any) -> None:
        self.record_events((event,))

    def record_events(self, events: Iterable[Any]) -> int:
        """Store telemetry events (msgspec Structs, tagged, or plain dicts) in one transaction."""
        secrets = secret_values()
        rows = [_event_row(e, secrets) for e in events]
        if not rows:
            return 0
        self._write([(_INSERT_EVENT, rows)])
        return len(rows)

    def iter_events(self, generation_id: str | None = None, *, type: str | None = None) -> Iterator[StoredEvent]:
        where, params = [], []
        if generation_id is not None:
            where.append("generation_id = ?")
            params.append(generation_id)
        if type is not None:
            where.append("type = ?")
            params.append(type)
        last = 0
        while True:
            clause = " AND ".join([*where, "id > ?"])
            rows = self._read(
                f"SELECT id, type, generation_id, level_id, turn, created, payload FROM events "
                f"WHERE {clause} ORDER BY id LIMIT {_PAGE}",
                [*params, last],
            )
            for r in rows:
                last = r[0]
                yield StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], _json_decode(r[6]))
            if len(rows) < _PAGE:
                return

    def record_fun(self, generation_id: str, score: float, features: Mapping[str, float] | None = None) -> None:
        """Store one play's fun score for a generation (a level may be played many times)."""
        score = float(score)
        if not np.isfinite(score):
            raise StoreError(f"fun score for {generation_id} is {score}; scores must be finite numbers in [0, 1]")
        feats = {str(k): float(v) for k, v in (features or {}).items()}
        self._write([(
            "INSERT INTO fun (generation_id, score, features, created) VALUES (?,?,?,?)",
            [(generation_id, score, _json_encode(feats).decode(), time.time())],
        )])

    def fun_of(self, generation_id: str) -> float | None:
        row = self._read("SELECT AVG(score) FROM fun WHERE generation_id = ?", (generation_id,))[0]
        return None if row[0] is None else float(row[0])

    # ------------------------------------------------------------------ sessions

    def record_session(self, session_id: str, info: Mapping[str, Any] | None = None) -> None:
        """Note that a play session started (and what it was configured with)."""
        self._write([(
            self._d.upsert("sessions", ("session_id", "started", "info"), "session_id"),
            [(session_id, time.time(), _scrubbed_json(dict(info or {}), secret_values()))],
        )])

    def sessions(self) -> list[tuple[str, float, dict[str, Any]]]:
        rows = self._read("SELECT session_id, started, info FROM sessions ORDER BY started")
        return [(r[0], r[1], _json_decode(r[2])) for r in rows]

    # ------------------------------------------------------------------ routing state

    def get_site_state(self, site: str) -> SiteState | None:
        """The site's routing state; while a server is unreachable, the last one this Store saw."""
        try:
            rows = self._read(
                "SELECT site, state, version, updated, evidence FROM site_state WHERE site = ?", (site,)
            )
        except StoreUnreachable:
            return self._states.get(site)
        if not rows:
            return None
        r = rows[0]
        st = self._states[site] = SiteState(r[0], r[1], r[2], r[3], _json_decode(r[4]))
        return st

    def set_site_state(
        self, site: str, state: str, version: str | None = None, evidence: Mapping[str, Any] | None = None
    ) -> None:
        row = (site, str(state), version, time.time(), _scrubbed_json(dict(evidence or {}), secret_values()))
        self._write([(self._d.upsert("site_state", ("site", "state", "version", "updated", "evidence"), "site"),
                      [row])])
        self._states[site] = SiteState(row[0], row[1], row[2], row[3], _json_decode(row[4]))

    def list_site_states(self) -> list[SiteState]:
        try:
            rows = self._read("SELECT site, state, version, updated, evidence FROM site_state ORDER BY site")
        except StoreUnreachable:
            return [self._states[k] for k in sorted(self._states)]
        out = [SiteState(r[0], r[1], r[2], r[3], _json_decode(r[4])) for r in rows]
        self._states.update((s.site, s) for s in out)
        return out

    def add_site_event(
        self, site: str, kind: str, evidence: Mapping[str, Any] | None = None, *, version: str | None = None
    ) -> int:
        """Record a promotion, rollback or state change with the evidence behind it.

        Returns the event's id (0 when the server was unreachable and the event waits in the buffer).
        """
        ev = dict(evidence or {})
        version = version if version is not None else ev.get("version")
        row = (site, kind, None if version is None else str(version), time.time(), _scrubbed_json(ev, secret_values()))
        got = self._write([(
            "INSERT INTO site_events (site, kind, version, created, evidence) VALUES (?,?,?,?,?) RETURNING id",
            [row],
        )], returning=True)
        return int(got or 0)

    def site_events(self, site: str | None = None) -> list[SiteEvent]:
        sql = "SELECT id, site, kind, version, created, evidence FROM site_events"
        params: list[Any] = []
        if site is not None:
            sql += " WHERE site = ?"
            params.append(site)
        rows = self._read(sql + " ORDER BY id", params)
        return [SiteEvent(r[0], r[1], r[2], r[3], r[4], _json_decode(r[5])) for r in rows]

    # ------------------------------------------------------------------ ratings

    def add_rating(
        self, generation_id: str, scores: Mapping[str, int], comment: str = "", *, rater: str | None = None
    ) -> int:
        """Store a person's rubric scores (each an integer 1-5) for a generated level.

        Never buffered: while the server is unreachable this raises
        :class:`StoreError`, so the rating page can tell the person to retry.
        """
        lo, hi = _RUBRIC_RANGE
        clean: dict[str, int] = {}
        for name, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise StoreError(f"rating {name!r} for {generation_id} is {value!r}; rubric scores are integers {lo}-{hi}")
            clean[str(name)] = value
        if not clean:
            raise StoreError(f"rating for {generation_id} has no rubric scores; give at least one (1-{hi})")
        got = self._write([(
            "INSERT INTO ratings (generation_id, scores, comment, rater, created) VALUES (?,?,?,?,?) RETURNING id",
            [(generation_id, _json_encode(clean).decode(), scrub(comment), rater, time.time())],
        )], returning=True, bufferable=False)
        return int(got or 0)

    def list_ratings(self, generation_id: str | None = None) -> list[Rating]:
        sql = "SELECT id, generation_id, scores, comment, rater, created FROM ratings"
        params: list[Any] = []
        if generation_id is not None:
            sql += " WHERE generation_id = ?"
            params.append(generation_id)
        rows = self._read(sql + " ORDER BY id", params)
        return [Rating(r[0], r[1], _json_decode(r[2]), r[3], r[4], r[5]) for r in rows]

    # ------------------------------------------------------------------ statistics

    def site_stats(self) -> list[SiteStats]:
        """One row per call site: volume, validity, who serves it, latency, tokens, cost."""
        with self._lock:
            agg = self._read(
                """
                SELECT site,
                       COUNT(*),
                       COUNT(DISTINCT request_id) + SUM(CASE WHEN request_id IS NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN valid IS NOT NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN valid = 1 THEN 1 ELSE 0 END),
                       SUM(CASE WHEN backend IN ('student', 'local') THEN 1 ELSE 0 END),
                       SUM(CASE WHEN served = 1 THEN 1 ELSE 0 END),
                       SUM(CASE WHEN served = 1 AND backend IN ('student', 'local') THEN 1 ELSE 0 END),
                       SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd),
                       AVG(CASE WHEN backend NOT IN ('student','local','procedural','mock') THEN cost_usd END)
                FROM calls GROUP BY site ORDER BY site
                """
            )
            served_by = dict(
                self._read(
                    """
                    SELECT c.site, c.backend FROM calls c
                    JOIN (SELECT site, MAX(rowid) AS r FROM calls WHERE served = 1 GROUP BY site) m
                      ON c.rowid = m.r
                    """
                )
            )
            latencies: dict[str, list[float]] = {}
            for site, ms in self._read("SELECT site, latency_ms FROM calls"):
                latencies.setdefault(site, []).append(ms)
            funs = dict(
                self._read(
                    "SELECT c.site, AVG(f.score) FROM fun f JOIN calls c ON c.call_id = f.generation_id GROUP BY c.site"
                )
            )
        states = {s.site: s for s in self.list_site_states()}
        out = []
        for (site, calls, requests, judged, valid, local, served, local_served,
             ptok, ctok, cost, teacher_cost) in agg:
            judged, valid = int(judged or 0), int(valid or 0)
            served, local_served = int(served or 0), int(local_served or 0)
            st = states.get(site)
            out.append(
                SiteStats(
                    site=site,
                    calls=int(calls),
                    requests=int(requests or 0),
                    judged=judged,
                    valid=valid,
                    valid_share=(valid / judged) if judged else None,
                    served_by=served_by.get(site),
                    state=st.state if st else None,
                    version=st.version if st else None,
                    local_calls=int(local or 0),
                    local_share=(local_served / served) if served else 0.0,
                    latency_p50_ms=float(np.median(latencies[site])) if latencies.get(site) else None,
                    prompt_tokens=int(ptok or 0),
                    completion_tokens=int(ctok or 0),
                    cost_usd=float(cost or 0.0),
                    cost_saved_usd=float(local_served * float(teacher_cost or 0.0)),
                    fun_mean=None if funs.get(site) is None else float(funs[site]),
                )
            )
        for site, st in states.items():  # sites with a routing state but no calls yet
            if site not in {s.site for s in out}:
                out.append(SiteStats(site, 0, 0, 0, 0, None, None, st.state, st.version, 0, 0.0, None, 0, 0, 0.0, 0.0, None))
        return sorted(out, key=lambda s: s.site)

    # ------------------------------------------------------------------ internals

    def _connection(self) -> Any:
        """The live connection; on PostgreSQL reconnects (with backoff) after the server went away."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store.open()")
        conn = self._conn
        if self._d is SQLITE or (conn is not None and not conn.closed and not conn.broken):
            return conn
        now = time.monotonic()
        if now < self._next_try:
            raise StoreUnreachable(f"store {self.path} is unreachable (next try in {self._next_try - now:.1f} s)")
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
        try:
            conn = POSTGRES.connect(self._url or "", connect_timeout_s=self._connect_timeout_s)
        except StoreUnreachable as exc:
            self._next_try = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, _RETRY_MAX_S)
            raise StoreUnreachable(f"store {self.path} is unreachable: {exc}") from None
        if not self._migrated:
            try:
                POSTGRES.migrate(conn, str(self.path))
            except BaseException as exc:
                conn.close()
                if isinstance(exc, POSTGRES.errors):
                    raise StoreError(f"cannot prepare store {self.path}: {_one_line(exc)}") from None
                raise
            self._migrated = True
        self._conn = conn
        self._backoff = _RETRY_MIN_S
        if self._down_since is not None and not self._buffer and not self._overflow:
            log.warning("store %s is reachable again after %.0f s", self.path, time.monotonic() - self._down_since)
            self._down_since = None
        return conn

    def _failed(self, what: str, exc: BaseException) -> StoreError:
        """The StoreError for a failed read or write; notes a lost server (one warning per outage)."""
        if self._d.is_disconnect(exc, self._conn):
            self._went_down(exc)
            return StoreUnreachable(f"store {self.path} is unreachable ({_one_line(exc)}); "
                                    f"{'writes are buffered until it returns' if what == 'write' else 'try again later'}")
        if self._d is SQLITE and what == "write" and "locked" in str(exc):
            return StoreError(f"cannot write to store {self.path}: {exc}; is another process holding it?")
        return StoreError(f"cannot {what} store {self.path}: {_one_line(exc)}")

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("store %s is unreachable (%s); keeping up to %d rows in memory until it returns",
                        self.path, _one_line(exc), self._buffer_limit)

    def _read(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                conn = self._connection()
                if self._buffer:  # read your own writes once the server is back
                    self._flush(conn)
                return conn.execute(self._d.sql(sql), params).fetchall()
            except StoreUnreachable as exc:
                self._went_down(exc)
                raise
            except self._d.errors as exc:
                raise self._failed("read", exc) from None

    def _write(self, ops: list[_Op], *, bufferable: bool = True, returning: bool = False) -> Any:
        """Run ``ops`` in one transaction; while a PostgreSQL server is unreachable, buffer them instead."""
        if self._d is POSTGRES:
            ops = [(sql, [_pg_row(r) for r in rows]) for sql, rows in ops]
        with self._lock:
            try:
                conn = self._connection()
                if self._buffer:
                    self._flush(conn)
                return self._run(conn, ops, returning=returning)
            except (StoreUnreachable, *self._d.errors) as exc:
                err = exc if isinstance(exc, StoreUnreachable) else self._failed("write", exc)
                if isinstance(err, StoreUnreachable):
                    self._went_down(exc)
                    if bufferable:
                        self._enqueue(ops)
                        return None
                raise err from None

    def _run(self, conn: Any, ops: list[_Op], *, returning: bool = False) -> Any:
        if len(ops) == 1 and self._d.atomic_alone(self._d.sql(ops[0][0]), ops[0][1]):
            return self._execute(conn, ops[0], returning)  # PostgreSQL, autocommit: one round trip
        result = None
        with self._d.transaction(conn):
            for op in ops:
                result = self._execute(conn, op, returning)
        return result

    def _execute(self, conn: Any, op: _Op, returning: bool) -> Any:
        sql, rows = op
        if returning:
            return conn.execute(self._d.sql(sql), rows[0]).fetchone()[0]
        if len(rows) == 1:
            conn.execute(self._d.sql(sql), rows[0])
        else:
            self._d.executemany(conn, self._d.sql(sql), rows)
        return None

    def _enqueue(self, ops: list[_Op]) -> None:
        for op in ops:
            self._buffer.append(op)
            self._buffered_rows += len(op[1])
        now = time.time()
        while self._buffered_rows > self._buffer_limit and self._buffer:
            _sql, rows = self._buffer.popleft()
            self._buffered_rows -= len(rows)
            if not self._overflow:
                log.warning("store %s: outage buffer full (%d rows); dropping the oldest rows (counted)",
                            self.path, self._buffer_limit)
            self._overflow += len(rows)
            self.dropped_rows += len(rows)
            first = self._overflow_span[0] if self._overflow_span else now
            self._overflow_span = (first, now)

    def _flush(self, conn: Any) -> None:
        """Write the buffered ops (and an overflow event, if rows were dropped) in one transaction."""
        ops = list(self._buffer)
        if self._overflow:
            first, last = self._overflow_span or (time.time(), time.time())
            payload = {"type": "store_buffer_overflow", "dropped_rows": self._overflow,
                       "limit_rows": self._buffer_limit, "first_drop": first, "last_drop": last}
            ops.append((_INSERT_EVENT, [("store_buffer_overflow", None, None, None, time.time(),
                                         _json_encode(payload).decode())]))
        rows = self._buffered_rows
        try:
            self._run(conn, ops)
        except self._d.errors as exc:
            if self._d.is_disconnect(exc, conn):
                raise
            # One bad op must not keep the rest out: write them one by one, drop (and count) what fails.
            # Each op leaves the buffer once written, so a disconnect half-way writes nothing twice.
            for op in ops:
                try:
                    self._run(conn, [op])
                except self._d.errors as one:
                    if self._d.is_disconnect(one, conn):
                        raise
                    self.dropped_rows += len(op[1])
                    log.error("store %s: dropped %d buffered rows the server refused: %s", self.path,
                              len(op[1]), _one_line(one))
                if self._buffer and op is self._buffer[0]:
                    self._buffer.popleft()
                    self._buffered_rows -= len(op[1])
                else:  # the overflow event
                    self._overflow, self._overflow_span = 0, None
        self._buffer.clear()
        self._buffered_rows = 0
        self._overflow, self._overflow_span = 0, None
        if self._down_since is not None:
            log.warning("store %s is reachable again after %.0f s; wrote the %d buffered rows",
                        self.path, time.monotonic() - self._down_since, rows)
            self._down_since = None

    def _select_calls(
        self, where: str, params: list[Any], *, limit: int, with_rowid: bool = False
    ) -> list[Any]:
        cols = ", ".join(f"c.{c}" for c in CALL_COLUMNS)
        # Correlated subqueries use the fun(generation_id) index: cost grows with the page, not the table.
        sql = (
            f"SELECT c.rowid, {cols}, c.extra, "
            "(SELECT AVG(score) FROM fun WHERE generation_id = c.call_id), "
            "(SELECT COUNT(*) FROM fun WHERE generation_id = c.call_id), "
            "(SELECT features FROM fun WHERE generation_id = c.call_id ORDER BY id DESC LIMIT 1) "
            f"FROM calls c {where} ORDER BY c.rowid LIMIT {int(limit)}"
        )
        rows = self._read(sql, params)
        out = []
        for row in rows:
            call = _call_from_row(row[1 : 1 + len(CALL_COLUMNS) + 1], row[-3], row[-2], row[-1])
            out.append((row[0], call) if with_rowid else call)
        return out


# ---------------------------------------------------------------------- helpers


def _scrubbed_json(value: Any, secrets: list[str]) -> str:
    return scrub(_json_encode(value).decode(), secrets)


def _call_row(record: CallRecord, secrets: list[str]) -> tuple[Any, ...]:
    if not isinstance(record, CallRecord):
        raise StoreError(f"record_call needs a generator.store.records.CallRecord, got {type(record).__name__}")
    data = msgspec.structs.asdict(record)
    row: list[Any] = []
    for col in CALL_COLUMNS:
        value = data.pop(col, None)
        if col in CALL_JSON_COLUMNS:
            if value is None and col in _JSON_DEFAULTS:
                value = _JSON_DEFAULTS[col]
            value = None if value is None else _scrubbed_json(value, secrets)
        elif col in ("raw_output", "error") and value is not None:
            value = scrub(str(value), secrets)
        elif col in ("valid", "served") and value is not None:
            value = int(bool(value))
        row.append(value)
    # Fields a newer CallRecord has that this schema has no column for yet.
    row.append(_scrubbed_json(data, secrets) if data else None)
    return tuple(row)


def _call_from_row(row: tuple[Any, ...], fun: float | None, plays: int | None, features: str | None) -> StoredCall:
    data: dict[str, Any] = {}
    for col, value in zip(CALL_COLUMNS, row):
        if col in CALL_JSON_COLUMNS and value is not None:
            value = _json_decode(value)
        elif col in ("valid", "served") and value is not None:
            value = bool(value)
        if value is not None:
            data[col] = value
    extra = row[len(CALL_COLUMNS)]
    if extra:
        known = set(CallRecord.__struct_fields__)
        data.update({k: v for k, v in _json_decode(extra).items() if k in known})
    record = msgspec.convert(data, CallRecord)
    return StoredCall(
        record=record,
        fun=None if fun is None else float(fun),
        fun_features=None if features is None else _json_decode(features),
        plays=int(plays or 0),
    )


def _event_row(event: Any, secrets: list[str]) -> tuple[Any, ...]:
    if isinstance(event, msgspec.Struct):
        tag = type(event).__struct_config__.tag
        etype = str(tag) if tag is not None else type(event).__name__
        payload = msgspec.to_builtins(event)
        if not isinstance(payload, dict):
            payload = {"value": payload}
        payload.setdefault("type", etype)
    elif isinstance(event, Mapping):
        payload = dict(event)
        etype = str(payload.get("type") or "event")
    else:
        raise StoreError(f"telemetry event must be a msgspec Struct or a dict, got {type(event).__name__}")
    turn = payload.get("turn")
    return (
        etype,
        _opt_str(payload.get("generation_id")),
        _opt_str(payload.get("level_id")),
        turn if isinstance(turn, int) and not isinstance(turn, bool) else None,
        time.time(),
        _scrubbed_json(payload, secrets),
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _pg_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(POSTGRES.text(v) if isinstance(v, str) else v for v in row)


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


def _buffer_limit() -> int:
    raw = os.environ.get(BUFFER_ENV, "").strip()
    if not raw:
        return _DEFAULT_BUFFER_ROWS
    try:
        value = int(raw)
    except ValueError:
        raise StoreError(f"{BUFFER_ENV}={raw!r} is not a whole number of rows") from None
    if value < 0:
        raise StoreError(f"{BUFFER_ENV}={raw!r} must be >= 0 (0 keeps nothing while the server is away)")
    return value
