"""Bots play the sample dungeon without a window and a summary comes out.

Each session asks its level source for levels (prefetched in the background),
a bot plays them, every event goes to a JSON-lines file under
``<data dir>/runs/`` (and into the generator's store when the source is the
generator facade), and each level gets its fun score.

Waits are split the way ``benchmarks/engine.py`` splits them: a session's
first level is a cold start (nothing was playing while it was made), so it
is reported on its own (``first_level_wait_ms_mean``) and only the levels
after it count as transitions (``mean_transition_wait_ms``,
``p99_transition_wait_ms``), which is what the prefetching is meant to hide.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from engine.core.bots import BOTS
from engine.core.errors import LevelSourceError
from engine.core.session import Session
from engine.core.telemetry import JsonlSink, TeeSink

from games.sample_dungeon.sources import open_source

log = logging.getLogger(__name__)


def resolve_data_dir(explicit: str | None) -> Path:
    """``--data-dir`` > ``FORGE_HOME`` > the platform's user data dir."""
    from generator.paths import data_dir

    return data_dir(explicit)


def wait_figures(session_waits: list[list[float]]) -> dict[str, float | int | None]:
    """Summarise each session's ``transition_waits_ms``: first levels apart from real transitions.

    ``None`` stands for "nothing to average" (e.g. one level per session has
    no transition at all), so a cold start never passes for a transition.
    """
    firsts = [waits[0] for waits in session_waits if waits]
    transitions = [w for waits in session_waits for w in waits[1:]]

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 3) if values else None

    return {
        "first_level_wait_ms_mean": mean(firsts),
        "transitions": len(transitions),
        "mean_transition_wait_ms": mean(transitions),
        "p99_transition_wait_ms": round(float(np.percentile(transitions, 99)), 3) if transitions else None,
    }


def _check_arguments(bot: str, sessions: int, levels_per_session: int, seed: int, max_turns: int | None) -> None:
    """Refuse arguments that would crash deep in the engine or silently play nothing."""
    if bot not in BOTS:
        raise ValueError(f"unknown bot {bot!r}; choose one of {', '.join(BOTS)}")
    if sessions < 1 or levels_per_session < 1:
        raise ValueError("sessions and levels_per_session must be at least 1")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, not {seed}")
    if max_turns is not None and max_turns < 1:
        raise ValueError(f"max_turns must be at least 1 (or None for the level's own limit), not {max_turns}")


def run_headless(
    *,
    bot: str = "explorer",
    sessions: int = 1,
    seed: int = 0,
    levels_per_session: int = 3,
    data_dir: str | None = None,
    source: str = "auto",
    retry_after_death: bool = True,
    max_turns: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Play ``sessions`` sessions of ``levels_per_session`` levels; return the summary dict."""
    _check_arguments(bot, sessions, levels_per_session, seed, max_turns)
    root = resolve_data_dir(data_dir)
    opened = open_source(source, data_dir=str(root))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    log_path = root / "runs" / f"telemetry-{stamp}-{bot}-seed{seed}.jsonl"
    jsonl = JsonlSink(log_path)
    sink = TeeSink(jsonl, opened.store_sink) if opened.store_sink is not None else jsonl
    reports = []
    session_waits: list[list[float]] = []
    turns = 0
    play_s = 0.0
    errors: list[str] = []
    t_start = time.perf_counter()
    bar = tqdm(total=sessions * levels_per_session, disable=not progress, unit="level", desc=f"{bot} playing")
    try:
        for s in range(sessions):
            session = Session(opened.source, sink, session_id=f"{bot}-{seed}-{s}-{stamp}",
                              seed=seed * 1000 + s, retry_after_death=retry_after_death)
            try:
                for _ in range(levels_per_session):
                    try:
                        reports += session.play(bot, 1, max_turns=max_turns)
                    except LevelSourceError as exc:
                        errors.append(str(exc))
                        log.error("%s", exc)
                        break
                    bar.update(1)
            finally:
                session.close()
            session_waits.append(list(session.transition_waits_ms))
            turns += session.turns_played
            play_s += session.play_seconds
    finally:
        bar.close()
        sink.close()
        opened.close()
    funs = [r.fun.score for r in reports if r.fun is not None]
    return {
        "bot": bot,
        "seed": seed,
        "sessions": sessions,
        "source": opened.kind,
        "backends": sorted({r.backend for r in reports}),
        "levels_played": len(reports),
        "levels_completed": sum(r.outcome == "completed" for r in reports),
        "deaths": sum(r.stats.deaths for r in reports if r.stats is not None),
        "mean_fun": round(statistics.fmean(funs), 4) if funs else None,
        "turns": turns,
        "turns_per_s": round(turns / play_s, 1) if play_s > 0 else None,
        **wait_figures(session_waits),
        "wall_s": round(time.perf_counter() - t_start, 3),
        "telemetry_path": str(log_path),
        "errors": errors,
        "levels": [
            {"level_id": r.level_id, "backend": r.backend, "difficulty": r.spec.difficulty,
             "outcome": r.outcome, "attempts": r.attempt, "turns": r.turns,
             "fun": r.fun.score if r.fun else None}
            for r in reports
        ],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary for people."""
    lines = [
        f"{summary['bot']} played {summary['levels_played']} levels from {summary['source']} "
        f"({', '.join(summary['backends']) or '-'}); completed {summary['levels_completed']}, "
        f"died {summary['deaths']} times",
        f"mean fun {summary['mean_fun']}, {summary['turns']} turns at {summary['turns_per_s']} turns/s, "
        f"mean transition wait {summary['mean_transition_wait_ms']} ms "
        f"({summary['transitions']} transition{'' if summary['transitions'] == 1 else 's'}; "
        f"first level {summary['first_level_wait_ms_mean']} ms)",
        f"telemetry: {summary['telemetry_path']}",
    ]
    lines += [f"error: {e}" for e in summary["errors"]]
    return "\n".join(lines)
