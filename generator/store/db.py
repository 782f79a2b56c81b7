"""The SQLite store: every generation call, telemetry, fun scores, routing state, ratings.

One :class:`Store` wraps one connection in WAL mode.  Every public method holds
the store's lock and runs in its own transaction, so the game thread and the
session's prefetch thread can share a store, and a trainer process can read
(or write) the same file at the same time (WAL: readers never block the
writer; a writer waits up to ``busy_timeout_ms`` for another).  A process
killed mid-write loses only the transaction it was in.

>>> import tempfile, pathlib
>>> from generator.records import CallRecord
>>> with Store.open(pathlib.Path(tempfile.mkdtemp()) / "forge.db") as store:
...     store.record_call(CallRecord(site="demo:f#00000000", backend="mock", valid=True))
...     [s.valid_share for s in store.site_stats()]
[1.0]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from generator.errors import StoreError
from generator.records import CallRecord
from generator.store.redact import scrub, secret_values
from generator.store.schema import CALL_COLUMNS, CALL_JSON_COLUMNS, MIGRATIONS, SCHEMA_VERSION

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

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


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
    """The generator's SQLite store.  Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._closed = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, busy_timeout_ms: int = 10_000) -> Store:
        """Open (creating and migrating if needed) the store at ``path``.

        ``None`` means ``forge.db`` in the data directory
        (:func:`generator.paths.db_path`).  Raises :class:`StoreError` naming the
        file when it is not a SQLite database, is damaged, or was written by a
        newer dungeon-forge.
        """
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
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("store %s: journal mode is %s, not WAL (network filesystem?)", p, mode)
            # NORMAL in WAL mode survives a killed process; only a power cut can
            # lose the last commits (never corrupt the file).
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, p)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"store {p} is not a usable SQLite database ({exc}); move the file aside "
                f"(a fresh store is created on the next start) or restore a backup"
            ) from None
        except StoreError:
            conn.close()
            raise
        return cls(conn, p)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        """True when SQLite's integrity check passes (used after crashes and in tests)."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

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
        cols = (*CALL_COLUMNS, "extra")
        sql = f"INSERT OR REPLACE INTO calls ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._write() as conn:
            conn.executemany(sql, rows)
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
        with self._lock:
            if site is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM calls WHERE site = ?", (site,)).fetchone()[0])

    def sites(self) -> list[str]:
        """Every call site with at least one call or a routing state."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT site FROM calls UNION SELECT site FROM site_state ORDER BY 1"
            ).fetchall()
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
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO events (type, generation_id, level_id, turn, created, payload) VALUES (?,?,?,?,?,?)",
                rows,
            )
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
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, type, generation_id, level_id, turn, created, payload FROM events "
                    f"WHERE {clause} ORDER BY id LIMIT {_PAGE}",
                    [*params, last],
                ).fetchall()
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
        with self._write() as conn:
            conn.execute(
                "INSERT INTO fun (generation_id, score, features, created) VALUES (?,?,?,?)",
                (generation_id, score, _json_encode(feats).decode(), time.time()),
            )

    def fun_of(self, generation_id: str) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT AVG(score) FROM fun WHERE generation_id = ?", (generation_id,)).fetchone()
        return None if row[0] is None else float(row[0])

    # ------------------------------------------------------------------ sessions

    def record_session(self, session_id: str, info: Mapping[str, Any] | None = None) -> None:
        """Note that a play session started (and what it was configured with)."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sessions (session_id, started, info) VALUES (?,?,?)",
                (session_id, time.time(), _scrubbed_json(dict(info or {}), secret_values())),
            )

    def sessions(self) -> list[tuple[str, float, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT session_id, started, info FROM sessions ORDER BY started").fetchall()
        return [(r[0], r[1], _json_decode(r[2])) for r in rows]

    # ------------------------------------------------------------------ routing state

    def get_site_state(self, site: str) -> SiteState | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT site, state, version, updated, evidence FROM site_state WHERE site = ?", (site,)
            ).fetchone()
        return None if row is None else SiteState(row[0], row[1], row[2], row[3], _json_decode(row[4]))

    def set_site_state(
        self, site: str, state: str, version: str | None = None, evidence: Mapping[str, Any] | None = None
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO site_state (site, state, version, updated, evidence) VALUES (?,?,?,?,?)",
                (site, str(state), version, time.time(), _scrubbed_json(dict(evidence or {}), secret_values())),
            )

    def list_site_states(self) -> list[SiteState]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT site, state, version, updated, evidence FROM site_state ORDER BY site"
            ).fetchall()
        return [SiteState(r[0], r[1], r[2], r[3], _json_decode(r[4])) for r in rows]

    def add_site_event(
        self, site: str, kind: str, evidence: Mapping[str, Any] | None = None, *, version: str | None = None
    ) -> int:
        """Record a promotion, rollback or state change with the evidence behind it."""
        ev = dict(evidence or {})
        version = version if version is not None else ev.get("version")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO site_events (site, kind, version, created, evidence) VALUES (?,?,?,?,?)",
                (site, kind, None if version is None else str(version), time.time(),
                 _scrubbed_json(ev, secret_values())),
            )
        return int(cur.lastrowid or 0)

    def site_events(self, site: str | None = None) -> list[SiteEvent]:
        sql = "SELECT id, site, kind, version, created, evidence FROM site_events"
        params: list[Any] = []
        if site is not None:
            sql += " WHERE site = ?"
            params.append(site)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        return [SiteEvent(r[0], r[1], r[2], r[3], r[4], _json_decode(r[5])) for r in rows]

    # ------------------------------------------------------------------ ratings

    def add_rating(
        self, generation_id: str, scores: Mapping[str, int], comment: str = "", *, rater: str | None = None
    ) -> int:
        """Store a person's rubric scores (each an integer 1-5) for a generated level."""
        lo, hi = _RUBRIC_RANGE
        clean: dict[str, int] = {}
        for name, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise StoreError(f"rating {name!r} for {generation_id} is {value!r}; rubric scores are integers {lo}-{hi}")
            clean[str(name)] = value
        if not clean:
            raise StoreError(f"rating for {generation_id} has no rubric scores; give at least one (1-{hi})")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO ratings (generation_id, scores, comment, rater, created) VALUES (?,?,?,?,?)",
                (generation_id, _json_encode(clean).decode(), scrub(comment), rater, time.time()),
            )
        return int(cur.lastrowid or 0)

    def list_ratings(self, generation_id: str | None = None) -> list[Rating]:
        sql = "SELECT id, generation_id, scores, comment, rater, created FROM ratings"
        params: list[Any] = []
        if generation_id is not None:
            sql += " WHERE generation_id = ?"
            params.append(generation_id)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        return [Rating(r[0], r[1], _json_decode(r[2]), r[3], r[4], r[5]) for r in rows]

    # ------------------------------------------------------------------ statistics

    def site_stats(self) -> list[SiteStats]:
        """One row per call site: volume, validity, who serves it, latency, tokens, cost."""
        with self._lock:
            agg = self._conn.execute(
                """
                SELECT site,
                       COUNT(*),
                       COUNT(DISTINCT request_id) + SUM(request_id IS NULL),
                       SUM(valid IS NOT NULL), SUM(valid = 1),
                       SUM(backend IN ('student', 'local')),
                       SUM(served = 1), SUM(served = 1 AND backend IN ('student', 'local')),
                       SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd),
                       AVG(CASE WHEN backend NOT IN ('student','local','procedural','mock') THEN cost_usd END)
                FROM calls GROUP BY site ORDER BY site
                """
            ).fetchall()
            served_by = dict(
                self._conn.execute(
                    """
                    SELECT c.site, c.backend FROM calls c
                    JOIN (SELECT site, MAX(rowid) AS r FROM calls WHERE served = 1 GROUP BY site) m
                      ON c.rowid = m.r
                    """
                ).fetchall()
            )
            latencies: dict[str, list[float]] = {}
            for site, ms in self._conn.execute("SELECT site, latency_ms FROM calls"):
                latencies.setdefault(site, []).append(ms)
            funs = dict(
                self._conn.execute(
                    "SELECT c.site, AVG(f.score) FROM fun f JOIN calls c ON c.call_id = f.generation_id GROUP BY c.site"
                ).fetchall()
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
                    cost_saved_usd=float(local_served * (teacher_cost or 0.0)),
                    fun_mean=None if funs.get(site) is None else float(funs[site]),
                )
            )
        for site, st in states.items():  # sites with a routing state but no calls yet
            if site not in {s.site for s in out}:
                out.append(SiteStats(site, 0, 0, 0, 0, None, None, st.state, st.version, 0, 0.0, None, 0, 0, 0.0, 0.0, None))
        return sorted(out, key=lambda s: s.site)

    # ------------------------------------------------------------------ internals

    def _write(self) -> _Transaction:
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store.open()")
        return _Transaction(self)

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
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store.open()")
        with self._lock:
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot read calls from store {self.path}: {exc}") from None
        out = []
        for row in rows:
            call = _call_from_row(row[1 : 1 + len(CALL_COLUMNS) + 1], row[-3], row[-2], row[-1])
            out.append((row[0], call) if with_rowid else call)
        return out


class _Transaction:
    """``with store._write() as conn``: the lock plus BEGIN IMMEDIATE / COMMIT / ROLLBACK."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        self._store._lock.acquire()
        try:
            self._store._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._store._lock.release()
            raise StoreError(f"cannot write to store {self._store.path}: {exc}; is another process holding it?") from None
        return self._store._conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        conn = self._store._conn
        try:
            if exc_type is None:
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            if exc_type is None:
                raise StoreError(f"cannot commit to store {self._store.path}: {err}") from None
        finally:
            self._store._lock.release()
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, StoreError):
            raise StoreError(f"write to store {self._store.path} failed: {exc}") from exc


# ---------------------------------------------------------------------- helpers


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {version}, newer than this dungeon-forge "
            f"understands ({SCHEMA_VERSION}); upgrade dungeon-forge or use another --data-dir"
        )
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("store %s migrated to schema version %d", path, version)


def _scrubbed_json(value: Any, secrets: list[str]) -> str:
    return scrub(_json_encode(value).decode(), secrets)


def _call_row(record: CallRecord, secrets: list[str]) -> tuple[Any, ...]:
    if not isinstance(record, CallRecord):
        raise StoreError(f"record_call needs a generator.records.CallRecord, got {type(record).__name__}")
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
