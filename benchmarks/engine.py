"""Benchmark the rules core and level transitions.

``python -m benchmarks.engine --json`` prints one JSON object:

* ``turns_per_s``: bots playing levels headless (rules + bot decisions), with
  the engine's caching (one symmetric FOV per player move, distance maps per
  goal kept for the level); ``naive_turns_per_s`` plays the *same* games
  (identical events, checked) recomputing an FOV per enemy and every distance
  map from scratch; ``speedup`` is their ratio.
* ``rules_turns_per_s`` / ``naive_rules_turns_per_s``: the recorded actions
  replayed through the rules alone (no bot), both ways.
* ``transition_wait_ms_p99``: how long a :class:`Session` blocks at level
  transitions with a deliberately slow source (``--source-ms``) while each
  level is played for ``--play-ms``; ``blocking_wait_ms_p99`` is the same
  source called at the transition (no prefetch), in the same run.
* ``frame_ms_p50`` / ``frame_ms_p95``: full play frames of the real
  ``GameView`` on an 80x50 level in a headless 1024x720 window (a turn, fog of
  war, camera at zoom 2, HUD, ``ctx.finish()`` each frame); the
  ``baseline_frame_ms_*`` keys are the same frames drawing the terrain as one
  sprite per tile, and ``frame_speedup_p50``/``_p95`` the ratios;
  ``idle_frame_ms_*`` are frames without a turn
  (``benchmarks/render_frames.py`` measures them, in a child process).  When
  no headless window can be opened, ``render_error`` says why and the other
  figures are still reported; ``--no-render`` skips them.

Seeded; levels are the engine's sample levels plus procedural ones when
``generator.backends.procedural`` is installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np

from engine.core.actions import Action
from engine.core.bots import BOTS, make_bot
from engine.core.game import Game, RulesConfig
from engine.core.level import Level, LevelSpec
from engine.core.samples import sample_level
from engine.core.session import Session
from engine.core.source import SourcedLevel
from engine.core.telemetry import MemorySink


def bench_levels(seed: int, count: int) -> tuple[list[Level], str]:
    levels = [sample_level("balanced"), sample_level("brutal"), sample_level("trivial")]
    try:
        from generator.backends.procedural import generate_procedural
    except ImportError:
        return levels, "samples"
    rng = np.random.default_rng(seed)
    for i in range(count):
        spec = LevelSpec(width=int(rng.integers(40, 65)), height=int(rng.integers(24, 49)),
                         difficulty=int(rng.integers(2, 8)), enemies=int(rng.integers(4, 16)),
                         items=int(rng.integers(2, 8)), theme=("crypt", "cave", "fortress", "sewer")[i % 4])
        levels.append(generate_procedural(spec, seed + i))
    return levels, "samples+procedural"


class _RecordingBot:
    def __init__(self, bot) -> None:
        self.bot, self.actions = bot, []

    def act(self, game: Game) -> Action:
        a = self.bot.act(game)
        self.actions.append(a)
        return a


SEEDS_PER_LEVEL = 4


def _games(levels: list[Level], seed: int):
    for i, level in enumerate(levels):
        for k in range(SEEDS_PER_LEVEL):
            for name in sorted(BOTS):
                yield level, seed + 100 * i + k, name


def play_all(levels: list[Level], seed: int, naive: bool) -> tuple[float, int, list, list[list[Action]]]:
    cfg = RulesConfig(naive=naive)
    turns, events, scripts = 0, [], []
    t0 = time.perf_counter()
    for level, game_seed, name in _games(levels, seed):
        sink = MemorySink()
        game = Game(level, game_seed, sink, level_id=f"{game_seed}-{name}", config=cfg)
        rec = _RecordingBot(make_bot(name, game_seed))
        limit = 100 + 6 * game.reachable_tiles
        while not game.finished and game.turn < limit:
            game.act(rec.act(game))
        turns += game.turn
        events.append(sink.events)
        scripts.append(rec.actions)
    return time.perf_counter() - t0, turns, events, scripts


def replay_all(levels: list[Level], seed: int, scripts: list[list[Action]], naive: bool) -> tuple[float, int]:
    cfg = RulesConfig(naive=naive)
    turns = 0
    t0 = time.perf_counter()
    for k, (level, game_seed, _) in enumerate(_games(levels, seed)):
        game = Game(level, game_seed, None, level_id="r", config=cfg)
        for a in scripts[k]:
            game.act(a)
        turns += game.turn
    return time.perf_counter() - t0, turns


class SlowSource:
    """Serves sample levels after a fixed delay, like a slow generator."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def start_session(self, session_id: str) -> None:
        pass

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel:
        time.sleep(self.delay_s)
        return SourcedLevel(sample_level("balanced"), backend="slow")


def transition_waits(levels: int, source_ms: float, play_ms: float, seed: int) -> dict[str, float]:
    source = SlowSource(source_ms / 1000)
    session = Session(source, MemorySink(), session_id="bench", seed=seed)
    bot = make_bot("speedrunner", seed)
    for _ in range(levels):
        game = session.next_game()
        t0 = time.perf_counter()
        while not game.finished:
            game.act(bot.act(game))
        # a person plays for a while; sleep the rest of the play time
        time.sleep(max(0.0, play_ms / 1000 - (time.perf_counter() - t0)))
        session.end_game(game)
    session.close()
    waits = session.transition_waits_ms[1:]  # the very first level has nothing to hide behind
    blocking = []
    for _ in range(min(levels, 20)):
        t0 = time.perf_counter()
        source.get_level(session.first_spec, seed=0)
        blocking.append((time.perf_counter() - t0) * 1000)
    return {
        "transition_wait_ms_p50": round(float(np.percentile(waits, 50)), 3),
        "transition_wait_ms_p99": round(float(np.percentile(waits, 99)), 3),
        "blocking_wait_ms_p99": round(float(np.percentile(blocking, 99)), 3),
    }


def render_frames(seed: int, frames: int) -> dict[str, Any]:
    """Play-frame times from ``benchmarks.render_frames`` (child process), under this benchmark's keys."""
    from benchmarks.render_frames import measure_play_subprocess

    play = measure_play_subprocess(frames=frames, baseline_frames=frames, seed=seed)
    if "render_error" in play:
        return {"render_error": play["render_error"]}
    return {
        "frame_ms_p50": play["frame_ms_p50"],
        "frame_ms_p95": play["frame_ms_p95"],
        "baseline_frame_ms_p50": play["baseline_frame_ms_p50"],
        "baseline_frame_ms_p95": play["baseline_frame_ms_p95"],
        "frame_speedup_p50": play["speedup_p50"],
        "frame_speedup_p95": play["speedup_p95"],
        "idle_frame_ms_p50": play["idle_frame_ms_p50"],
        "idle_frame_ms_p95": play["idle_frame_ms_p95"],
        "render_frames": play["frames"],
        "render_level": play["level"],
        "render_window": play["window"],
        "renderer": play["renderer"],
        "render_baseline": play["baseline"],
    }


def run(seed: int = 0, procedural_levels: int = 8, repeats: int = 3, transitions: int = 30,
        source_ms: float = 50.0, play_ms: float = 80.0, render_frames_n: int = 240) -> dict[str, Any]:
    levels, kind = bench_levels(seed, procedural_levels)
    best: dict[str, float] = {}
    turns = 0
    for _ in range(repeats):  # best of N, cached and naive interleaved so both see the same machine load
        t_c, turns, ev_c, scripts = play_all(levels, seed, naive=False)
        t_n, turns_n, ev_n, _ = play_all(levels, seed, naive=True)
        if ev_c != ev_n or turns != turns_n:
            raise AssertionError("naive and cached rules played different games: the comparison is void")
        r_c, _ = replay_all(levels, seed, scripts, naive=False)
        r_n, _ = replay_all(levels, seed, scripts, naive=True)
        for key, t in (("bots", t_c), ("bots_naive", t_n), ("rules", r_c), ("rules_naive", r_n)):
            best[key] = min(best.get(key, float("inf")), t)
    out: dict[str, Any] = {
        "benchmark": "engine",
        "seed": seed,
        "levels": len(levels),
        "games": len(levels) * SEEDS_PER_LEVEL * len(BOTS),
        "level_kinds": kind,
        "bots": sorted(BOTS),
        "turns": turns,
        "turns_per_s": round(turns / best["bots"], 1),
        "naive_turns_per_s": round(turns / best["bots_naive"], 1),
        "speedup": round(best["bots_naive"] / best["bots"], 2),
        "rules_turns_per_s": round(turns / best["rules"], 1),
        "naive_rules_turns_per_s": round(turns / best["rules_naive"], 1),
        "rules_speedup": round(best["rules_naive"] / best["rules"], 2),
        "source_ms": source_ms,
        "play_ms": play_ms,
        "transitions": transitions,
        **transition_waits(transitions, source_ms, play_ms, seed),
        "python": platform.python_version(),
    }
    out["transition_wait_ratio"] = round(out["transition_wait_ms_p99"] / max(out["blocking_wait_ms_p99"], 1e-9), 4)
    if render_frames_n > 0:
        out.update(render_frames(seed, render_frames_n))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--procedural-levels", type=int, default=8, help="extra procedural levels when available")
    p.add_argument("--repeats", type=int, default=3, help="best of N timings")
    p.add_argument("--transitions", type=int, default=30, help="levels played through the slow source")
    p.add_argument("--source-ms", type=float, default=50.0, help="latency of the slow level source")
    p.add_argument("--play-ms", type=float, default=80.0, help="how long each level is played")
    p.add_argument("--render-frames", type=int, default=240,
                   help="play frames timed per draw path (tile layer and baseline) on the 80x50 level")
    p.add_argument("--no-render", action="store_true", help="skip the render frame times")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = run(args.seed, args.procedural_levels, args.repeats, args.transitions, args.source_ms, args.play_ms,
                 0 if args.no_render else args.render_frames)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
