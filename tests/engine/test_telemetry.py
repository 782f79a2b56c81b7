"""Telemetry events and sinks: round trips, per-level durability, crash loses at most one level."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import msgspec
import pytest

from engine.core.bots import play_level
from engine.core.samples import sample_level
from engine.core.telemetry import (
    JsonlSink,
    LevelEnd,
    LevelScored,
    LevelStart,
    MemorySink,
    Move,
    TelemetrySink,
    decode_event,
    encode_event,
    events_by_level,
    read_events,
)


def test_every_event_round_trips_with_ids():
    out = play_level(sample_level("balanced"), "explorer", seed=1, generation_id="gen-9", level_id="L1")
    names = {type(e).__name__ for e in out.events}
    assert {"LevelStart", "Move", "Attack", "DamageDealt", "DamageTaken", "ItemPickup", "LevelEnd",
            "LevelScored"} <= names
    for e in out.events:
        assert e.level_id == "L1" and e.generation_id == "gen-9" and e.turn >= 0
        assert decode_event(encode_event(e)) == e


def test_sinks_satisfy_the_protocol():
    assert isinstance(MemorySink(), TelemetrySink)


def test_jsonl_sink_writes_a_level_when_it_ends(tmp_path):
    path = tmp_path / "t.jsonl"
    sink = JsonlSink(path)
    out = play_level(sample_level("trivial"), "speedrunner", sink=sink, level_id="A")
    assert read_events(path) == out.events  # durable without close()
    start = out.events[0]
    sink.emit(msgspec.structs.replace(start, level_id="B"))
    assert len(read_events(path)) == len(out.events)  # level B still buffered
    sink.close()
    assert [e.level_id for e in read_events(path)][-1] == "B"  # a normal quit loses nothing
    with JsonlSink(path) as again:  # appends
        again.emit(Move(level_id="C", generation_id=None, turn=0, x=1, y=1))
    assert set(events_by_level(read_events(path))) == {"A", "B", "C"}


def test_a_crash_loses_at_most_the_current_level(tmp_path):
    path = tmp_path / "crash.jsonl"
    script = textwrap.dedent(f"""
        import os
        from engine.core.bots import play_level
        from engine.core.game import Game
        from engine.core.samples import sample_level
        from engine.core.actions import Move
        from engine.core.telemetry import JsonlSink
        sink = JsonlSink({str(path)!r})
        play_level(sample_level("balanced"), "explorer", sink=sink, level_id="done")
        game = Game(sample_level("balanced"), 1, sink, level_id="crashed")
        game.act(Move(1, 0)); game.act(Move(1, 0))
        os._exit(3)  # no close, no flush, no atexit: a crash
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    events = read_events(path)
    by_level = events_by_level(events)
    assert list(by_level) == ["done"]
    assert isinstance(by_level["done"][-1], LevelScored)
    assert any(isinstance(e, LevelEnd) for e in by_level["done"])


def test_a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "torn.jsonl"
    good = encode_event(Move(level_id="A", generation_id=None, turn=1, x=1, y=2))
    path.write_bytes(good + b"\n" + good[:20])
    assert len(read_events(path)) == 1
    path.write_bytes(good[:20] + b"\n" + good + b"\n")
    with pytest.raises(msgspec.DecodeError, match="line 1"):
        read_events(path)


def test_level_start_carries_par_and_reachable_tiles():
    out = play_level(sample_level("balanced"), "speedrunner", seed=0)
    start = out.events[0]
    assert isinstance(start, LevelStart)
    assert start.par_turns == 25 and start.reachable_tiles > 100
