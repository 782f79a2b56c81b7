"""``python -m benchmarks.validate --json``: validator and procedural generator throughput.

Seeded mix of valid and broken levels (procedural levels, about a third
broken on purpose: open border, enemy beside the spawn, exit on a wall,
things on one tile, a sealed-off pocket, too few enemies).  Measured in one
run, one thread:

- ``levels_per_s``: :func:`validate_level` on :class:`Level` objects, one call each;
- ``json_levels_per_s``: the same on Level JSON text (decode included);
- ``batch_levels_per_s`` / ``batch_json_levels_per_s``: :func:`validate_batch` (every verdict; the
  failure text of failing levels is written on first use), and
  ``batch_with_failure_text_levels_per_s``: the same, then reading every report's failures;
- ``python_baseline_levels_per_s``: :mod:`benchmarks.baseline_validator`
  (pure-Python BFS, same gates) on the first tenth of the same Level
  objects; ``speedup`` and ``batch_speedup`` divide the single-level and
  batch rates *on that same slice* by it;
- ``procedural_levels_per_s``: :func:`generate_procedural` for random specs.

Timings are best-of-``--repeat`` rounds in which every measurement takes a
turn (in a rotating order), to damp noise from other processes and keep the
ratios fair; ``cpu_time`` repeats every rate in process CPU time.  The
labeller (OpenCV or scipy) is named in the output; it runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.baseline_validator import baseline_codes
from engine.core.content import ALL_THEMES, Tile
from engine.core.level import Level, LevelSpec, Placed
from generator.backends.procedural import generate_procedural
from generator.validation import components, validate_batch, validate_level

#: Levels per size in a default run; a test checks the baseline on every one of them.
DEFAULT_LEVELS = 2000

BREAKS = ("open_border", "near_spawn", "exit_on_wall", "overlap", "pocket", "few_enemies")


def make_levels(n: int, width: int, height: int, seed: int, broken_share: float = 1 / 3
                ) -> tuple[list[Level], list[LevelSpec]]:
    """``n`` seeded procedural levels of one size, about ``broken_share`` of them broken."""
    rng = np.random.default_rng(seed)
    levels, specs = [], []
    for k in range(n):
        spec = LevelSpec(width=width, height=height, difficulty=int(rng.integers(1, 11)),
                         enemies=int(rng.integers(4, 16)), items=int(rng.integers(0, 10)),
                         theme=ALL_THEMES[k % len(ALL_THEMES)])
        level = generate_procedural(spec, int(rng.integers(2**31)))
        if rng.random() < broken_share:
            level = _break(level, BREAKS[int(rng.integers(len(BREAKS)))])
        levels.append(level)
        specs.append(spec)
    return levels, specs


def _break(level: Level, how: str) -> Level:
    grid = level.grid.copy()
    enemies, items, exit_ = list(level.enemies), list(level.items), level.exit
    sx, sy = level.spawn
    if how == "open_border":
        grid[0, grid.shape[1] // 2] = Tile.FLOOR
    elif how == "near_spawn" and enemies:
        enemies[0] = Placed(enemies[0].kind, sx, sy + 1 if grid[sy + 1, sx] != Tile.WALL else sy - 1)
    elif how == "exit_on_wall":
        exit_ = (0, 0)
    elif how == "overlap" and enemies:
        items.append(Placed("potion", enemies[0].x, enemies[0].y))
    elif how == "pocket":
        # A floor tile walled in on all sides, in the first solid 3x3 block of wall.
        solid = np.argwhere(grid[1:-1, 1:-1] == Tile.WALL)
        for y, x in solid:
            if (grid[y:y + 3, x:x + 3] == Tile.WALL).all():
                grid[y + 1, x + 1] = Tile.FLOOR
                break
    else:
        enemies = enemies[: len(enemies) // 3]
    return Level(name=level.name, grid=grid, spawn=level.spawn, exit=exit_, enemies=enemies, items=items,
                 theme=level.theme)


def best_rates(jobs: dict[str, tuple[Callable[[], Any], int]], repeat: int,
               cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Levels per second of each job, best of ``repeat`` rounds (wall clock).

    The jobs take turns within each round, and the order turns round by
    round, so a burst of load from other processes hits all of them alike
    and the ratios stay fair.  ``cpu``, when given, receives the same rates
    measured in this process's CPU time, which other processes disturb less.
    """
    best = dict.fromkeys(jobs, float("inf"))
    best_cpu = dict.fromkeys(jobs, float("inf"))
    names = list(jobs)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = jobs[name][0]
            t, c = time.perf_counter(), time.process_time()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
            best_cpu[name] = min(best_cpu[name], max(time.process_time() - c, 1e-9))
    if cpu is not None:
        cpu.update({name: round(jobs[name][1] / best_cpu[name], 1) for name in jobs})
    return {name: jobs[name][1] / best[name] for name in jobs}


def run(seed: int, n: int, sizes: list[tuple[int, int]], repeat: int, gen_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed, "levels": n, "repeat": repeat, "python": platform.python_version(),
                           "cpus": os.cpu_count(), "labeller": components.backend(),
                           "labeller_threads": components.threads(),
                           "load_avg_1m_before": round(os.getloadavg()[0], 2), "sizes": {}}
    for w, h in sizes:
        levels, specs = make_levels(n, w, h, seed)
        texts = [lv.to_json() for lv in levels]
        n_invalid = sum(not validate_level(lv, sp).valid for lv, sp in zip(levels, specs))
        base_n = min(n, max(50, n // 10))  # the baseline is slow; time it on a slice of the same levels
        b_levels, b_specs = levels[:base_n], specs[:base_n]
        valid_levels = [lv for lv, sp in zip(levels, specs) if validate_level(lv, sp).valid]
        row: dict[str, Any] = {"invalid_share": round(n_invalid / n, 3), "baseline_levels": base_n,
                               "baseline_invalid_share": round(
                                   sum(not validate_level(lv, sp).valid for lv, sp in zip(b_levels, b_specs)) / base_n, 3)}
        cpu: dict[str, float] = {}
        row.update(best_rates({
            "levels_per_s": (lambda: [validate_level(lv, sp) for lv, sp in zip(levels, specs)], n),
            "json_levels_per_s": (lambda: [validate_level(t, sp) for t, sp in zip(texts, specs)], n),
            "batch_levels_per_s": (lambda: validate_batch(levels, specs), n),
            "batch_json_levels_per_s": (lambda: validate_batch(texts, specs), n),
            # failing batch reports write their failure text on first use: this rate reads all of it
            "batch_with_failure_text_levels_per_s": (
                lambda: [r.failures for r in validate_batch(levels, specs)], n),
            "batch_all_valid_levels_per_s": (lambda: validate_batch(valid_levels), len(valid_levels)),
            # the single-level API and the batch API on exactly the baseline's levels, for the ratios
            "baseline_slice_levels_per_s": (lambda: [validate_level(lv, sp) for lv, sp in zip(b_levels, b_specs)],
                                            base_n),
            "baseline_slice_batch_levels_per_s": (lambda: validate_batch(b_levels, b_specs), base_n),
            "python_baseline_levels_per_s": (
                lambda: [baseline_codes(lv, sp) for lv, sp in zip(b_levels, b_specs)], base_n),
        }, repeat, cpu))
        base = row["python_baseline_levels_per_s"]
        row["speedup"] = row["baseline_slice_levels_per_s"] / base
        row["batch_speedup"] = row["baseline_slice_batch_levels_per_s"] / base
        row["cpu_time"] = cpu  # the same rates in process CPU time (less disturbed by other processes)
        row["cpu_speedup"] = round(cpu["baseline_slice_levels_per_s"] / cpu["python_baseline_levels_per_s"], 2)
        row["cpu_batch_speedup"] = round(cpu["baseline_slice_batch_levels_per_s"] / cpu["python_baseline_levels_per_s"], 2)
        out["sizes"][f"{w}x{h}"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
    rng = np.random.default_rng(seed)
    gen_specs = [LevelSpec(width=int(rng.integers(16, 65)), height=int(rng.integers(12, 49)),
                           difficulty=int(rng.integers(1, 11)), enemies=int(rng.integers(0, 31)),
                           items=int(rng.integers(0, 21)), theme=ALL_THEMES[k % 4]) for k in range(gen_n)]
    out["procedural_levels_per_s"] = round(best_rates(
        {"gen": (lambda: [generate_procedural(sp, k) for k, sp in enumerate(gen_specs)], gen_n)}, 1)["gen"], 1)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)  # other processes share the CPUs: read with care
    main_size = f"{sizes[0][0]}x{sizes[0][1]}"
    for key in ("levels_per_s", "batch_levels_per_s", "python_baseline_levels_per_s", "speedup", "batch_speedup"):
        out[key] = out["sizes"][main_size][key]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.validate", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--levels", type=int, default=DEFAULT_LEVELS, help=f"levels per size (default {DEFAULT_LEVELS})")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
    p.add_argument("--generate", type=int, default=300, help="levels for the procedural rate (default 300)")
    p.add_argument("--sizes", default="48x32,32x24", help="WxH list; the first is the headline (default 48x32,32x24)")
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    out = run(args.seed, args.levels, sizes, args.repeat, args.generate)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"validator benchmark (seed {out['seed']}, {out['levels']} levels per size, best of {out['repeat']})")
    print(f"  labeller: {out['labeller']} ({out['labeller_threads']} thread)")
    for size, row in out["sizes"].items():
        print(f"  {size}: {row['invalid_share'] * 100:.0f}% invalid")
        for k, v in row.items():
            if k == "cpu_time":
                for kk, vv in v.items():
                    print(f"    cpu {kk:<26} {vv:>12,.1f}")
            elif k != "invalid_share":
                print(f"    {k:<30} {v:>12,.1f}")
    print(f"  procedural_levels_per_s        {out['procedural_levels_per_s']:>12,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
