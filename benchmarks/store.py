"""Many games writing into one store while the trainer reads it: SQLite vs PostgreSQL.

``--clients N`` game processes each play a few real levels with a headless bot
(procedural generator, engine Session, the ``explorer`` bot) to learn what a
level writes: the facade's call records, the telemetry batches and the fun
score.  Then, all started together, each replays those writes level after
level with fresh ids, as fast as the store takes them, for ``--seconds``
(the bot's play time between levels is left out, so the store is the
bottleneck).  Meanwhile ``python -m generator.train --if-needed`` runs in a
loop against the same store (with a threshold it never reaches, so it only
reads and decides).

Reported per backend: ``writes_per_s`` (rows committed per second, all
clients), ``record_ms_p50``/``record_ms_p99`` (one store call: a level's
call records, a telemetry batch or a fun score), ``lost_rows`` (rows the
clients say they wrote minus rows in the store at the end), ``errors`` (store
calls that raised, e.g. "database is locked"), and ``ratio_writes_per_s``
(PostgreSQL / SQLite, same run, same machine).

PostgreSQL: a throw-away server from the machine's ``initdb``/``pg_ctl``
(durable defaults: fsync on) unless ``--url`` names a database to use;
``--pg-sync off`` sets ``synchronous_commit = off`` for the clients' sessions
(a server crash can lose the last commits, as a power cut can with SQLite's
``synchronous = NORMAL``; nothing is corrupted).

    python -m benchmarks.store --backend both --clients 4 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_TRAIN_THRESHOLD = "schedule.min_new_examples=1000000000"  # the reader decides, never trains


# ---------------------------------------------------------------------- one game process


class _Recorder:
    """Stands in for the store while the warm-up levels are played: keeps each write in order."""

    path = "<recorder>"

    def __init__(self) -> None:
        self.ops: list[tuple[str, Any]] = []

    def record_calls(self, records: Any) -> int:
        records = list(records)
        self.ops.append(("calls", records))
        return len(records)

    def record_call(self, record: Any) -> None:
        self.record_calls([record])

    def record_events(self, events: Any) -> int:
        events = list(events)
        self.ops.append(("events", events))
        return len(events)

    def record_fun(self, generation_id: str, score: float, features: Any = None) -> None:
        self.ops.append(("fun", (generation_id, score, dict(features or {}))))

    def record_session(self, session_id: str, info: Any = None) -> None:
        pass

    def close(self) -> None:
        pass


def _warm_up_levels(levels: int, seed: int) -> list[list[tuple[str, Any]]]:
    """Play ``levels`` real levels headless; the writes of each, grouped per level."""
    import msgspec

    from engine.core.session import Session
    from generator.facade import LevelGenerator

    rec = _Recorder()
    gen = LevelGenerator(["procedural"], store=rec)  # type: ignore[arg-type]
    sink = gen.telemetry_sink()
    with Session(gen, sink, session_id="warmup", seed=seed) as session:
        session.play("explorer", levels)
    sink.close()
    bundles: list[list[tuple[str, Any]]] = []
    for kind, payload in rec.ops:
        if kind == "calls" or not bundles:
            bundles.append([])
        if kind == "events":
            payload = [_event_dict(e, msgspec) for e in payload]
        bundles[-1].append((kind, payload))
    return [b for b in bundles if any(k == "calls" for k, _ in b)]


def _event_dict(event: Any, msgspec: Any) -> dict[str, Any]:
    """A telemetry event as the plain dict the store takes (its type tag kept)."""
    if not isinstance(event, msgspec.Struct):
        return dict(event)
    tag = type(event).__struct_config__.tag
    out = msgspec.to_builtins(event)
    out.setdefault("type", str(tag) if tag is not None else type(event).__name__)
    return out


#: Where run_one hands each client process its store (SQLite file or PostgreSQL URL).
_TARGET_ENV = "FORGE_BENCH_STORE_TARGET"


def _client(target: str, seconds: float, seed: int, warmup_levels: int) -> dict[str, Any]:
    import msgspec

    from generator.store import Store

    bundles = _warm_up_levels(warmup_levels, seed)
    store = Store.open(target)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every client starts together
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    rows = {"calls": 0, "events": 0, "fun": 0}
    latencies: list[float] = []
    errors: list[str] = []
    t_end = time.monotonic() + seconds
    levels = 0
    while time.monotonic() < t_end:
        bundle = bundles[levels % len(bundles)]
        levels += 1
        ids: dict[str, str] = {}
        for kind, payload in bundle:
            if kind == "calls":
                req = uuid.uuid4().hex
                recs = []
                for r in payload:
                    new = ids.setdefault(r.call_id, uuid.uuid4().hex)
                    recs.append(msgspec.structs.replace(r, call_id=new, request_id=req, session_id=session_id,
                                                        created=time.time()))
                fn, args, n = store.record_calls, (recs,), len(recs)
            elif kind == "events":
                evs = [{**e, "generation_id": ids.get(e.get("generation_id"), e.get("generation_id"))}
                       for e in payload]
                fn, args, n = store.record_events, (evs,), len(evs)
            else:
                gid, score, feats = payload
                fn, args, n = store.record_fun, (ids.get(gid, gid), score, feats), 1
            t0 = time.perf_counter()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(" ".join(str(exc).split())[:200])
                continue
            finally:
                latencies.append((time.perf_counter() - t0) * 1000.0)
            rows[kind] += n
    t_close = time.perf_counter()
    store.close()  # flushes an outage buffer, if any
    return {"rows": rows, "levels": levels, "latencies_ms": latencies, "errors": errors,
            "close_ms": (time.perf_counter() - t_close) * 1000.0, "buffer": store.buffer_status()}


# ---------------------------------------------------------------------- the run


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _count_rows(target: str) -> dict[str, int]:
    from generator.store import Store

    with Store.open(target) as s:
        return {t: int(s._read(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("calls", "events", "fun")}


def run_one(backend: str, clients: int, seconds: float, seed: int, *, url: str | None, warmup_levels: int,
            trainer: bool, pg_sync: bool = True) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="forge-bench-store-"))
    server = None
    env = {**os.environ, "FORGE_HOME": str(root)}
    env.pop("FORGE_DB_URL", None)
    if backend == "sqlite":
        target = str(root / "forge.db")
    else:
        if url:
            target = url
        else:
            from generator.store.pg_temp import TempPostgres

            server = TempPostgres(durable=True, max_connections=max(100, clients + 20)).start()
            target = server.create_database()
        if not pg_sync:  # the clients' sessions only; the server's default stays
            target += ("&" if "?" in target else "?") + "options=-csynchronous_commit%3Doff"
        env["FORGE_DB_URL"] = target
    try:
        from generator.store import Store

        Store.open(target).close()  # create and migrate once, before the clients race
        procs = [
            # The target reaches the clients through the environment: a URL's password stays out of `ps`.
            subprocess.Popen([sys.executable, "-m", "benchmarks.store", "--client", "env", "--seconds", str(seconds),
                              "--seed", str(seed + i), "--warmup-levels", str(warmup_levels)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env, _TARGET_ENV: target})
            for i in range(clients)
        ]
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a client failed to start: {line} {p.stderr.read()[-2000:]}")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        # Read every client's output as it comes (a full pipe would stall the client).
        outputs: list[tuple[str, str]] = [("", "")] * len(procs)

        def drain(i: int) -> None:
            outputs[i] = procs[i].communicate(timeout=seconds + 300)

        readers = [threading.Thread(target=drain, args=(i,), daemon=True) for i in range(len(procs))]
        for t in readers:
            t.start()
        reader: dict[str, Any] = {"runs": 0, "errors": 0, "last": None}
        if trainer:
            while any(t.is_alive() for t in readers):
                out = subprocess.run([sys.executable, "-m", "generator.train", "--if-needed", "--json", "--quiet",
                                      "--data-dir", str(root), "--set", _TRAIN_THRESHOLD],
                                     capture_output=True, text=True, env=env, timeout=max(120, 4 * seconds))
                reader["runs"] += 1
                try:
                    doc = json.loads(out.stdout.strip().splitlines()[-1])
                except (IndexError, ValueError):
                    doc = {"error": (out.stderr or "no output").strip()[-300:]}
                if out.returncode != 0 or "error" in doc or doc.get("trained"):
                    reader["errors"] += 1
                    reader.setdefault("error_samples", []).append(
                        str(doc.get("error") or doc.get("reason") or out.stderr.strip()[-300:])[:300])
                reader["last"] = doc.get("reason") or doc.get("error")
        results = []
        for t in readers:
            t.join(timeout=seconds + 300)
        for p, (out, err) in zip(procs, outputs):
            if p.returncode != 0:
                raise RuntimeError(f"a client failed ({p.returncode}): {err.strip()[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.perf_counter() - t0
        present = _count_rows(target)
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    claimed = {t: sum(r["rows"][t] for r in results) for t in ("calls", "events", "fun")}
    lat = [x for r in results for x in r["latencies_ms"]]
    errs = [e for r in results for e in r["errors"]]
    active = seconds  # every client writes for `seconds` after the common start
    return {
        "backend": backend,
        "clients": clients,
        "synchronous_commit": None if backend == "sqlite" else ("on" if pg_sync else "off"),
        "seconds": seconds,
        "writes_per_s": round(sum(claimed.values()) / active, 1),
        "levels_per_s": round(sum(r["levels"] for r in results) / active, 1),
        "record_ms_p50": _pct(lat, 0.5),
        "record_ms_p99": _pct(lat, 0.99),
        "rows_claimed": claimed,
        "rows_in_store": present,
        "lost_rows": sum(claimed.values()) - sum(present.values()),
        "errors": len(errs),
        "error_samples": sorted(set(errs))[:3],
        "dropped_by_buffer": sum(r["buffer"]["dropped_rows"] for r in results),
        "trainer_reads": reader,
        "wall_s": round(wall, 1),
    }


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of one backend: medians of the rates and latencies, sums of losses and errors."""
    if len(rounds) == 1:
        return rounds[0]
    out = dict(rounds[len(rounds) // 2])
    for key in ("writes_per_s", "levels_per_s", "record_ms_p50", "record_ms_p99"):
        values = [r[key] for r in rounds if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    out["writes_per_s_rounds"] = [r["writes_per_s"] for r in rounds]
    for key in ("lost_rows", "errors", "dropped_by_buffer"):
        out[key] = sum(r[key] for r in rounds)
    out["error_samples"] = sorted({e for r in rounds for e in r["error_samples"]})[:3]
    out["rows_claimed"] = {t: sum(r["rows_claimed"][t] for r in rounds) for t in rounds[0]["rows_claimed"]}
    out["rows_in_store"] = {t: sum(r["rows_in_store"][t] for r in rounds) for t in rounds[0]["rows_in_store"]}
    out["trainer_reads"] = {"runs": sum(r["trainer_reads"]["runs"] for r in rounds),
                            "errors": sum(r["trainer_reads"]["errors"] for r in rounds),
                            "last": rounds[-1]["trainer_reads"]["last"],
                            "error_samples": [e for r in rounds for e in r["trainer_reads"].get("error_samples", [])][:3]}
    out["rounds"] = len(rounds)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both",
                   help="store backend; both = each in turn, with the PostgreSQL/SQLite ratio (default)")
    p.add_argument("--clients", type=int, default=4, help="game processes writing at once (default 4)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long each client writes (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds per backend, alternating; rates and latencies are medians (default 1)")
    p.add_argument("--url", help="PostgreSQL database to use instead of a throw-away server (its tables must be empty)")
    p.add_argument("--warmup-levels", type=int, default=2, help="real levels each client plays first (default 2)")
    p.add_argument("--pg-sync", choices=("on", "off"), default="on",
                   help="PostgreSQL synchronous_commit for the clients (default on: a commit waits for its WAL "
                        "flush; off is closer to SQLite's synchronous=NORMAL)")
    p.add_argument("--no-trainer", action="store_true", help="do not run generator.train --if-needed alongside")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--client", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        target = os.environ[_TARGET_ENV] if args.client == "env" else args.client
        print(json.dumps(_client(target, args.seconds, args.seed, args.warmup_levels)), flush=True)
        return 0
    if args.clients < 1 or args.seconds <= 0 or args.warmup_levels < 1 or args.repeat < 1:
        p.error("--clients, --warmup-levels and --repeat must be >= 1 and --seconds > 0")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    skipped: str | None = None
    if args.backend != "sqlite" and not args.url:
        from generator.store.pg_temp import missing_reason

        skipped = missing_reason()
        if skipped and args.backend == "postgres":
            print(json.dumps({"error": skipped}) if args.json else f"error: {skipped}",
                  file=sys.stdout if args.json else sys.stderr)
            return 2
        if skipped:  # --backend both (make bench): SQLite alone, saying why
            backends = ("sqlite",)
    load_at_start = round(os.getloadavg()[0], 2)
    rounds: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    for _ in range(args.repeat):  # alternate the backends so drift in the machine's load hits both
        for b in backends:
            rounds[b].append(run_one(b, args.clients, args.seconds, args.seed, url=args.url,
                                     warmup_levels=args.warmup_levels, trainer=not args.no_trainer,
                                     pg_sync=args.pg_sync == "on"))
    runs = {b: _combine(r) for b, r in rounds.items()}
    doc: dict[str, Any] = {"benchmark": "store", "clients": args.clients, "seconds": args.seconds, "seed": args.seed,
                           "repeat": args.repeat,
                           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "platform": platform.platform(),
                                       "loadavg_1m_at_start": load_at_start,
                                       "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}}
    if skipped:
        doc.update(runs)
        doc["postgres"] = {"skipped": skipped}
    elif len(runs) == 1:
        doc.update(next(iter(runs.values())))
    else:
        doc.update(runs)
        s, g = runs["sqlite"]["writes_per_s"], runs["postgres"]["writes_per_s"]
        doc["ratio_writes_per_s"] = round(g / s, 3) if s else None
    if args.json:
        print(json.dumps(doc))
    else:
        for name, r in runs.items():
            print(f"{name:<9} {args.clients:>3} clients: {r['writes_per_s']:>9.1f} rows/s  p99 {r['record_ms_p99']} ms  "
                  f"lost {r['lost_rows']}  errors {r['errors']}  trainer reads {r['trainer_reads']['runs']}")
        if "ratio_writes_per_s" in doc:
            print(f"postgres / sqlite writes_per_s: {doc['ratio_writes_per_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
