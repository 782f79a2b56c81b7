"""Overhead of the capture plugin per ``by llm()`` call, plugin on vs off in one run.

The foreign Jac program ``tests/generator/jacprog/recipes.jac`` calls
``invent_recipe`` (an object return type, so schema judging runs) against
byllm's MockLLM, so only the plugin's own work differs between the two sides:

* ``off``: the plugin is unregistered from jaclang's plugin manager; byllm
  answers directly;
* ``on``: the plugin wraps byllm's hook, describes the call, judges the
  result against its schema and writes the record to the sink (by default
  the SQLite store in a throw-away data directory; ``--sink memory`` keeps
  records in a list to isolate the plugin from the disk).

Calls alternate in seeded, shuffled blocks of both modes so drift (CPU
frequency, other processes) hits both sides alike.

    python -m benchmarks.capture --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

JACPROG = Path(__file__).resolve().parents[1] / "tests" / "generator" / "jacprog"
RECIPE = {"title": "Bench rice", "ingredients": [{"name": "rice", "grams": 200}], "steps": ["boil"], "minutes": 15}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(calls: int, seed: int, sink: str, block: int = 25) -> dict[str, object]:
    import jaclang  # noqa: F401
    from byllm.lib import MockLLM
    from jaclang.jac0core.runtime import plugin_manager

    from generator import capture

    capture.install()
    sys.path.insert(0, str(JACPROG))
    import recipes  # type: ignore[import-not-found]

    kept: list[object] = []
    if sink == "memory":
        capture.set_record_sink(kept.append)

    def one_call() -> float:
        recipes.llm = MockLLM(model_name="mockllm", ctx_window=128_000, config={"outputs": [recipes.Recipe(
            title=RECIPE["title"],
            ingredients=[recipes.Ingredient(name="rice", grams=200)],
            steps=["boil"],
            minutes=15,
        )]})
        t0 = time.perf_counter()
        recipes.invent_recipe(["rice"], "plain")
        return (time.perf_counter() - t0) * 1000.0

    def set_plugin(on: bool) -> None:
        registered = plugin_manager.is_registered(capture.CapturePlugin)
        if on and not registered:
            plugin_manager.register(capture.CapturePlugin, name="dungeon_forge_capture")
            capture.ensure_outermost()
        elif not on and registered:
            plugin_manager.unregister(capture.CapturePlugin)

    rng = random.Random(seed)
    times: dict[bool, list[float]] = {True: [], False: []}
    for mode in (True, False):  # warm-up: compile, first store open, caches
        set_plugin(mode)
        for _ in range(5):
            one_call()
    blocks = [mode for _ in range(max(1, calls // block)) for mode in (True, False)]
    rng.shuffle(blocks)
    for mode in blocks:
        set_plugin(mode)
        times[mode] += [one_call() for _ in range(block)]
    set_plugin(True)

    on_p50, off_p50 = statistics.median(times[True]), statistics.median(times[False])
    return {
        "benchmark": "capture",
        "site": "recipes:invent_recipe (MockLLM, object result)",
        "sink": sink,
        "calls_per_side": len(times[True]),
        "seed": seed,
        "off_ms_p50": round(off_p50, 4),
        "on_ms_p50": round(on_p50, 4),
        "overhead_ms_p50": round(on_p50 - off_p50, 4),
        "overhead_ms_p95": round(_percentile(times[True], 0.95) - _percentile(times[False], 0.95), 4),
        "ratio_on_to_off_p50": round(on_p50 / off_p50, 3),
        "goal_overhead_ms_p50": 1.0,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per side (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the block order (default 0)")
    parser.add_argument("--sink", choices=("store", "memory"), default="store",
                        help="where captured records go (default: SQLite store in a temp data dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="forge-bench-capture-") as home:
        os.environ["FORGE_HOME"] = home  # never write benchmark calls into the user's store
        result = run(args.calls, args.seed, args.sink)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"capture overhead per by llm() call ({result['sink']} sink, {result['calls_per_side']} calls/side):")
        print(f"  plugin off p50 {result['off_ms_p50']:.3f} ms, on p50 {result['on_ms_p50']:.3f} ms")
        print(f"  overhead p50 {result['overhead_ms_p50']:.3f} ms (goal <= 1 ms), p95 {result['overhead_ms_p95']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
