"""The render benchmark's pieces: the 80x50 play frames, and a clear reason when there is no window."""

from __future__ import annotations

import numpy as np

from benchmarks.render_frames import bench_level, play_frames


def test_bench_level_is_80x50_and_connected():
    from scipy import ndimage

    level = bench_level(0)
    assert level.grid.shape == (50, 80)
    _, n = ndimage.label(level.grid == 0)
    assert n == 1  # one connected floor: the bot can walk everywhere
    assert np.array_equal(level.grid, bench_level(0).grid)  # seeded


def test_play_frames_report_both_draw_paths(window):
    out = play_frames(window, frames=4, baseline_frames=4, blocks=2)
    for key in ("frame_ms_p50", "frame_ms_p95", "baseline_frame_ms_p50", "baseline_frame_ms_p95",
                "speedup_p50", "speedup_p95"):
        assert out[key] > 0
    assert out["frames"] == 4 and out["baseline_frames"] == 4 and out["level"] == "80x50"


def test_engine_benchmark_says_why_when_no_window_opens(monkeypatch):
    from benchmarks.engine import render_frames

    monkeypatch.setenv("PYGLET_HEADLESS_DEVICE", "99")  # an EGL device that does not exist
    out = render_frames(seed=0, frames=2)
    assert "frame_ms_p50" not in out
    assert "no headless window" in out["render_error"]
