"""What the facade costs per level on top of the procedural generator it wraps.

Three ways to get the same seeded levels, in one run, alternating per spec so
drift hits every side alike:

* ``direct``: ``generate_procedural(spec, seed)`` (the baseline);
* ``validate``: ``LevelGenerator(["procedural"], store=False)``: the facade
  with validation but no recording;
* ``facade``: the full facade recording every call in a SQLite store (WAL) in
  a throw-away data directory.

    python -m benchmarks.facade --json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _specs(n: int, seed: int) -> list[object]:
    from engine.core.content import ALL_THEMES
    from engine.core.level import LevelSpec

    rng = random.Random(seed)
    themes = sorted(ALL_THEMES)
    return [
        LevelSpec(
            width=rng.randint(16, 64), height=rng.randint(12, 48), difficulty=rng.randint(1, 10),
            enemies=rng.randint(0, 12), items=rng.randint(0, 8), theme=rng.choice(themes),
        )
        for _ in range(n)
    ]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(levels: int, seed: int) -> dict[str, object]:
    from generator.facade import LevelGenerator
    from generator.backends.procedural import generate_procedural
    from generator.store import Store

    specs = _specs(levels, seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "forge.db")
        full = LevelGenerator(["procedural"], store=store)
        bare = LevelGenerator(["procedural"], store=False)
        for spec in specs[:5]:  # warm-up: imports, tcod, SQLite pages
            generate_procedural(spec, 0)
            full.generate(spec, seed=0)
            bare.generate(spec, seed=0)
        times: dict[str, list[float]] = {"direct": [], "validate": [], "facade": []}
        order = list(times)
        rng = random.Random(seed)
        for i, spec in enumerate(specs):
            rng.shuffle(order)
            for side in order:
                t0 = time.perf_counter()
                if side == "direct":
                    generate_procedural(spec, seed + i)
                elif side == "validate":
                    bare.generate(spec, seed=seed + i)
                else:
                    full.generate(spec, seed=seed + i)
                times[side].append((time.perf_counter() - t0) * 1000.0)
        recorded = store.count_calls()
        store.close()

    def summary(v: list[float]) -> dict[str, float]:
        return {"p50_ms": round(_p(v, 0.5), 3), "p90_ms": round(_p(v, 0.9), 3), "mean_ms": round(statistics.fmean(v), 3)}

    direct, validate, facade = (statistics.median(times[k]) for k in ("direct", "validate", "facade"))
    return {
        "benchmark": "facade",
        "levels": levels,
        "seed": seed,
        "recorded_calls": recorded,
        "direct": summary(times["direct"]),
        "validate": summary(times["validate"]),
        "facade": summary(times["facade"]),
        "overhead_ms_p50": round(facade - direct, 3),
        "validate_ms_p50": round(validate - direct, 3),
        "record_ms_p50": round(facade - validate, 3),
        "ratio_facade_to_direct": round(facade / direct, 3) if direct else None,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.facade", description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", type=int, default=200, help="levels per side (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = run(args.levels, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for side in ("direct", "validate", "facade"):
            s = result[side]
            print(f"{side:9s} p50 {s['p50_ms']:8.3f} ms  p90 {s['p90_ms']:8.3f} ms")
        print(f"overhead per level (p50): {result['overhead_ms_p50']:.3f} ms "
              f"(validate {result['validate_ms_p50']:.3f}, record {result['record_ms_p50']:.3f}); "
              f"facade/direct = {result['ratio_facade_to_direct']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
