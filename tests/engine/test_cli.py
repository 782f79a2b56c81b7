"""``python -m games.sample_dungeon --headless``: one JSON object with the promised fields."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.core.telemetry import LevelScored, events_by_level, read_events


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "games.sample_dungeon", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_headless_json_summary(tmp_path):
    proc = run_cli("--headless", "--bot", "cautious", "--sessions", "2", "--levels-per-session", "2",
                   "--seed", "3", "--source", "samples", "--data-dir", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # exactly one JSON object
    for key in ("levels_played", "levels_completed", "mean_fun", "turns_per_s", "mean_transition_wait_ms"):
        assert key in summary, key
    assert summary["levels_played"] == 4 and summary["levels_completed"] == 4
    assert summary["transitions"] == 2  # two sessions of two levels: one real transition each
    assert summary["first_level_wait_ms_mean"] >= 0 and summary["mean_transition_wait_ms"] >= 0
    assert 0.0 <= summary["mean_fun"] <= 1.0 and summary["turns_per_s"] > 0
    events = read_events(summary["telemetry_path"])
    levels = events_by_level(events)
    assert len(levels) == 4
    assert all(isinstance(evs[-1], LevelScored) for evs in levels.values())


def test_same_seed_same_play(tmp_path):
    runs = [json.loads(run_cli("--headless", "--bot", "explorer", "--seed", "5", "--source", "samples",
                               "--data-dir", str(tmp_path / str(i)), "--json").stdout) for i in range(2)]
    assert [lv["turns"] for lv in runs[0]["levels"]] == [lv["turns"] for lv in runs[1]["levels"]]
    assert runs[0]["mean_fun"] == runs[1]["mean_fun"]


def test_help_and_bad_bot():
    assert "--headless" in run_cli("--help").stdout
    bad = run_cli("--headless", "--bot", "wizard")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_sources_open_by_name(tmp_path):
    import importlib.util

    import pytest

    from engine.core.difficulty import DEFAULT_FIRST_SPEC
    from engine.core.errors import LevelSourceError
    from games.sample_dungeon.sources import open_source

    samples = open_source("samples")
    assert samples.source.get_level(DEFAULT_FIRST_SPEC, seed=1).level.name == "balanced sample"
    with pytest.raises(LevelSourceError, match="choose one of"):
        open_source("dreams")
    if importlib.util.find_spec("generator.backends.procedural") is not None:
        proc = open_source("procedural")
        got = proc.source.get_level(DEFAULT_FIRST_SPEC, seed=1)
        assert (got.level.width, got.backend) == (DEFAULT_FIRST_SPEC.width, "procedural")
        opened = open_source("auto", data_dir=str(tmp_path))
        try:
            assert opened.kind == "generator" and opened.store_sink is not None
        finally:
            opened.close()


def test_wait_figures_keep_each_sessions_first_level_apart():
    from games.sample_dungeon.headless import wait_figures

    # cold starts of 500 and 300 ms, then prefetched levels that were (nearly) ready
    figures = wait_figures([[500.0, 2.0, 4.0], [300.0, 6.0]])
    assert figures["first_level_wait_ms_mean"] == 400.0
    assert figures["transitions"] == 3
    assert figures["mean_transition_wait_ms"] == 4.0
    assert figures["p99_transition_wait_ms"] <= 6.0
    # a session whose first level never came has no waits at all
    assert wait_figures([[], [10.0]])["first_level_wait_ms_mean"] == 10.0


def test_one_level_per_session_has_no_transition(tmp_path):
    proc = run_cli("--headless", "--bot", "speedrunner", "--sessions", "2", "--levels-per-session", "1",
                   "--max-turns", "400", "--source", "samples", "--data-dir", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["levels_played"] == 2
    assert summary["transitions"] == 0
    assert summary["mean_transition_wait_ms"] is None and summary["p99_transition_wait_ms"] is None
    assert summary["first_level_wait_ms_mean"] >= 0


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--seed", "-1", "0 or more"),
    ("--max-turns", "-3", "1 or more"),
    ("--max-turns", "three", "not a whole number"),
])
def test_bad_numbers_are_refused_before_playing(tmp_path, flag, value, says):
    proc = run_cli("--headless", "--source", "samples", "--data-dir", str(tmp_path), "--json", flag, value)
    assert proc.returncode == 2
    assert f"argument {flag}" in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "runs").exists()  # nothing was played or written


def test_run_headless_refuses_the_same_numbers(tmp_path):
    from games.sample_dungeon.headless import run_headless

    with pytest.raises(ValueError, match="seed must be 0 or more"):
        run_headless(seed=-1, source="samples", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        run_headless(max_turns=0, source="samples", data_dir=str(tmp_path))
