"""Soak: many facade requests against a fake teacher that injects faults on a seeded schedule.

    python -m benchmarks.soak --requests 10000 --json
    python -m benchmarks.soak --requests 300 --workers 4 --fault-rate 0.3 --seed 1

``--workers`` threads each run a :class:`~generator.facade.LevelGenerator`
(the Jac teacher first, procedural as the fallback) recording into one
SQLite store in a throw-away data directory; the teacher is
``tests/fakes/soak_teacher.py`` on 127.0.0.1 (nothing leaves the machine),
answering valid levels and, for a ``--fault-rate`` share of its requests, one
of: 500, 429 with Retry-After, an answer slower than the client's timeout, a
dropped connection, a non-JSON 200, truncated JSON, schema-breaking JSON, a
level failing one of the gates V1-V7, a level with an unknown tile.

Reported (one JSON object with ``--json``):

* ``requests``, ``served_valid`` (every served level re-checked with
  ``generator.validation.validate_level`` against its spec, independently of
  the facade's own verdict), ``exceptions`` (raised by ``generate``, by type);
* ``p50_ms``, ``p99_ms``, ``max_ms`` of a request, ``requests_per_s``;
* ``faults_injected`` by kind (what the fake teacher sent) and
  ``faults_recorded``: what the store holds about them, from each attempt's
  record -- the HTTP faults in ``transport`` (``http_500``, ``http_429``,
  ``connection`` for dropped, ``timeout`` for slow), ``reasks`` (byllm asking
  again after schema-breaking output), attempt errors (a body that is not a
  completion), invalid attempts by gate; ``trace`` compares the two kind by
  kind and ``faults_unrecorded`` is what left no trace;
* ``integrity_check`` (SQLite ``PRAGMA integrity_check`` after the run),
  ``peak_rss_mb`` and ``rss_mb`` sampled at every tenth of the run (flat
  memory: no growth with requests);
* ``baseline``: the same path with no faults, run first (``--baseline N``,
  default a tenth of the requests, at most 500), and ``p50_vs_baseline``,
  ``p99_vs_baseline``, ``requests_per_s_vs_baseline``: what the faults cost.

Bounded: ``--time-limit-s`` stops issuing requests (``stopped_early``), each
request has the facade's deadline, and the fake answers only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HTTP_KINDS = {"http_500": "http_500", "http_429": "http_429", "dropped": "connection", "slow": "timeout"}
CONTENT_KINDS = ("non_json", "truncated", "schema", "gate_V1", "gate_V2", "gate_V3", "gate_V4", "gate_V5", "gate_V6",
                 "gate_V7", "unknown_tile")


def _load_teacher_fake() -> Any:
    from benchmarks import load_fake

    return load_fake("soak_teacher", "soak")


def _specs(n: int, seed: int) -> list[Any]:
    from engine.core.content import ALL_THEMES
    from engine.core.level import LevelSpec

    rng = random.Random(seed)
    themes = sorted(ALL_THEMES)
    return [LevelSpec(width=rng.randint(16, 48), height=rng.randint(12, 36), difficulty=rng.randint(1, 10),
                      enemies=rng.randint(0, 10), items=rng.randint(0, 6), theme=rng.choice(themes))
            for _ in range(n)]


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(requests: int, *, workers: int = 4, seed: int = 0, fault_rate: float = 0.3, time_limit_s: float = 900.0,
        teacher_timeout_s: float = 1.0, slow_s: float = 1.5, deadline_s: float = 10.0,
        data_dir: str | None = None, baseline: int | None = None) -> dict[str, Any]:
    """Run the soak and return the report (see the module doc).

    First ``baseline`` requests (default: a tenth, at most 500) go through the
    same path against the same fake with no faults, into their own store;
    their latency and throughput are the in-run baseline the soak's figures
    are compared with (``*_vs_baseline``).
    """
    n_base = min(500, max(1, requests // 10)) if baseline is None else baseline
    base = None
    if n_base > 0:
        base = _phase(n_base, workers=workers, seed=seed + 1, fault_rate=0.0, time_limit_s=time_limit_s,
                      teacher_timeout_s=teacher_timeout_s, slow_s=slow_s, deadline_s=deadline_s, data_dir=None)
    report = _phase(requests, workers=workers, seed=seed, fault_rate=fault_rate, time_limit_s=time_limit_s,
                    teacher_timeout_s=teacher_timeout_s, slow_s=slow_s, deadline_s=deadline_s, data_dir=data_dir)
    if base is not None:
        report["baseline"] = {k: base[k] for k in ("requests", "served_valid", "exceptions", "p50_ms", "p99_ms",
                                                    "requests_per_s", "faults_injected_total", "integrity_check")}
        for key in ("p50_ms", "p99_ms", "requests_per_s"):
            a, b = report[key], base[key]
            report[f"{key.removesuffix('_ms')}_vs_baseline"] = round(a / b, 2) if a and b else None
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return report


def _phase(requests: int, *, workers: int, seed: int, fault_rate: float, time_limit_s: float,
           teacher_timeout_s: float, slow_s: float, deadline_s: float, data_dir: str | None) -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
    from generator.backends.teacher import LLMTeacherBackend
    from generator.facade import LevelGenerator
    from generator.store import Store
    from generator.settings import TeacherConfig
    from generator.validation import validate_level

    fake = _load_teacher_fake()
    from generator.backends.teacher import levels_module

    levels_module()  # compile/import jac/levels.jac once, before the clock starts
    specs = _specs(max(requests, 1), seed)
    tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="forge-soak-")
    home = Path(data_dir or tmp.name)  # type: ignore[union-attr]
    db = home / "forge.db"
    lock = threading.Lock()
    latencies: list[float] = []
    exceptions: Counter[str] = Counter()
    served_by: Counter[str] = Counter()
    served_valid = 0
    done = 0
    next_index = 0
    rss_trace: list[tuple[int, float]] = []
    marks = {max(1, requests * k // 10) for k in range(1, 11)}
    t_start = time.monotonic()
    stop_at = t_start + time_limit_s
    stopped_early = False

    with fake.SoakTeacher(seed=seed, fault_rate=fault_rate, slow_s=slow_s) as teacher:
        config = TeacherConfig(model="gpt-4o-mini", base_url=teacher.url, timeout_s=teacher_timeout_s)

        def worker() -> None:
            nonlocal served_valid, done, next_index, stopped_early
            with Store.open(db) as store, LevelGenerator([LLMTeacherBackend(config)], store=store, data_dir=home,
                                                         deadline_s=deadline_s) as gen:
                gen.start_session(f"soak-{threading.get_ident()}")
                while True:
                    with lock:
                        if next_index >= requests:
                            return
                        if time.monotonic() > stop_at:
                            stopped_early = True
                            return
                        i = next_index
                        next_index += 1
                    spec = specs[i]
                    t0 = time.perf_counter()
                    try:
                        got = gen.generate(spec, seed=seed * 100_003 + i)
                    except Exception as exc:  # noqa: BLE001 - counted: the goal is zero
                        with lock:
                            exceptions[type(exc).__name__] += 1
                            done += 1
                        continue
                    ms = (time.perf_counter() - t0) * 1000.0
                    ok = validate_level(got.level.to_json(), spec).valid  # independent re-check
                    with lock:
                        latencies.append(ms)
                        served_by[got.backend] += 1
                        served_valid += ok
                        done += 1
                        if done in marks:
                            rss_trace.append((done, round(_rss_mb(), 1)))

        threads = [threading.Thread(target=worker, name=f"soak-{k}") for k in range(max(1, workers))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - t_start
        injected = {k: v for k, v in sorted(teacher.injected.items()) if k != "ok"}
        teacher_requests = teacher.requests

    with Store.open(db) as store:
        integrity = store.integrity_ok()
        recorded = _recorded(store)
    if tmp is not None:
        tmp.cleanup()
    trace = _trace(injected, recorded)
    return {
        "benchmark": "soak",
        "requests": done,
        "requested": requests,
        "stopped_early": stopped_early,
        "served_valid": served_valid,
        "exceptions": sum(exceptions.values()),
        "exception_types": dict(exceptions),
        "served_by": dict(served_by),
        "p50_ms": _round(_pct(latencies, 0.50)),
        "p99_ms": _round(_pct(latencies, 0.99)),
        "max_ms": _round(max(latencies) if latencies else None),
        "requests_per_s": round(done / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 1),
        "teacher_http_requests": teacher_requests,
        "faults_injected": injected,
        "faults_injected_total": sum(injected.values()),
        "faults_recorded": recorded,
        "faults_recorded_total": sum(t["recorded"] for t in trace.values()),
        "trace": trace,
        "faults_unrecorded": sum(max(0, t["injected"] - t["recorded"]) for t in trace.values()),
        "integrity_check": "ok" if integrity else "FAILED",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "rss_mb": [{"after_requests": n, "rss_mb": mb} for n, mb in rss_trace],
        "config": {"workers": workers, "seed": seed, "fault_rate": fault_rate, "teacher_timeout_s": teacher_timeout_s,
                   "slow_s": slow_s, "deadline_s": deadline_s, "time_limit_s": time_limit_s},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _recorded(store: Any) -> dict[str, Any]:
    """What the store's attempt records say about faults (the teacher's attempts only)."""
    transport: Counter[str] = Counter()
    gates: Counter[str] = Counter()
    reasks = attempts = attempt_errors = http_exhausted = invalid = abandoned = 0
    for call in store.iter_calls(backend="llm"):
        r = call.record
        attempts += 1
        t = r.transport or {}
        faults = t.get("faults") or {}
        transport.update(faults)
        reasks += int(t.get("reasks", 0))
        if r.error is not None:
            if (r.error or "").startswith("timeout:"):
                abandoned += 1  # the facade's deadline; the request went on in the background
            elif t and sum(faults.values()) == t.get("requests", 0):
                http_exhausted += 1  # every request failed: the retries ran out (already in transport)
            else:
                attempt_errors += 1
        elif r.valid is False:
            invalid += 1
            gates.update({f.get("gate") for f in r.failures if f.get("gate")})
    return {"teacher_attempts": attempts, "transport": dict(sorted(transport.items())), "reasks": reasks,
            "attempt_errors": attempt_errors, "http_exhausted": http_exhausted, "abandoned": abandoned,
            "invalid_attempts": invalid, "invalid_by_gate": dict(sorted(gates.items()))}


def _trace(injected: dict[str, int], recorded: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Injected vs recorded, per HTTP kind and for the content faults together."""
    out = {kind: {"injected": injected.get(kind, 0), "recorded": recorded["transport"].get(as_recorded, 0)}
           for kind, as_recorded in HTTP_KINDS.items()}
    out["content"] = {
        "injected": sum(injected.get(k, 0) for k in CONTENT_KINDS),
        "recorded": recorded["reasks"] + recorded["attempt_errors"] + recorded["invalid_attempts"],
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300, help="facade requests (default 300)")
    p.add_argument("--workers", type=int, default=4, help="concurrent requesters, one facade each (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-rate", type=float, default=0.3, help="share of teacher requests given a fault (0.3)")
    p.add_argument("--time-limit-s", type=float, default=900.0, help="stop issuing requests after this (900)")
    p.add_argument("--baseline", type=int, default=None,
                   help="fault-free requests first, the in-run baseline (default: a tenth, at most 500; 0: none)")
    p.add_argument("--data-dir", default=None, help="keep the store here (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.requests < 1 or args.workers < 1 or not 0.0 <= args.fault_rate <= 1.0:
        p.error("--requests and --workers must be at least 1, --fault-rate in 0..1")
    from generator.guards.output import json_stdout

    # Every injected fault makes byllm/litellm log an ERROR: expected here, so only the soak's own output shows.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for name in ("byllm", "byllm.llm", "LiteLLM", "openai", "httpx", "generator.facade", "generator.backends"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with json_stdout(args.json) as emit:
        report = run(args.requests, workers=args.workers, seed=args.seed, fault_rate=args.fault_rate,
                     time_limit_s=args.time_limit_s, data_dir=args.data_dir, baseline=args.baseline)
        if args.json:
            emit(report)
            return 0
    print(f"requests {report['requests']} (of {report['requested']}), served valid {report['served_valid']}, "
          f"exceptions {report['exceptions']}, integrity {report['integrity_check']}")
    print(f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms; {report['requests_per_s']} req/s; "
          f"peak RSS {report['peak_rss_mb']} MB")
    if "baseline" in report:
        b = report["baseline"]
        print(f"fault-free baseline ({b['requests']} requests): p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, "
              f"{b['requests_per_s']} req/s; p50 x{report['p50_vs_baseline']}, throughput "
              f"x{report['requests_per_s_vs_baseline']}")
    print(f"faults injected {report['faults_injected_total']}, recorded {report['faults_recorded_total']}, "
          f"unrecorded {report['faults_unrecorded']}")
    for kind, t in report["trace"].items():
        print(f"  {kind:<10} injected {t['injected']:>6}  recorded {t['recorded']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
