"""StoreSink: the engine's telemetry lands in the store, fun joins to the generation."""

from __future__ import annotations

import pytest

from engine.core.telemetry import LevelEnd, LevelScored, Move, TelemetrySink
from generator.errors import StoreError
from generator.store.records import CallRecord
from generator.store import Store
from generator.store.telemetry_sink import StoreSink

SITE = "jac.levels:design_level#00000000"


def end(gid: str) -> LevelEnd:
    return LevelEnd(level_id="L1", generation_id=gid, turn=9, outcome="completed", hp=5, max_hp=10, min_hp=3,
                    explored_tiles=40, reachable_tiles=60, kills=1, enemies_total=2, enemies_engaged=2,
                    damage_dealt=4, damage_taken=5, gold=3, items_picked=1)


def test_events_buffer_until_the_level_ends_and_fun_joins(tmp_path):
    with Store.open(tmp_path / "forge.db") as store:
        rec = CallRecord(site=SITE, backend="procedural", valid=True, served=True)
        store.record_call(rec)
        sink = StoreSink(store)
        assert isinstance(sink, TelemetrySink)
        sink.emit(Move(level_id="L1", generation_id=rec.call_id, turn=1, x=2, y=3))
        assert sink.pending == 1 and not list(store.iter_events())
        sink.emit(end(rec.call_id))
        assert sink.pending == 0
        sink.emit(LevelScored(level_id="L1", generation_id=rec.call_id, turn=9, fun=0.7, features={"explore": 0.5}))
        assert [e.type for e in store.iter_events(rec.call_id)] == ["move", "level_end", "level_scored"]
        (call,) = store.iter_calls(SITE)
        assert call.fun == pytest.approx(0.7) and call.fun_features == {"explore": 0.5}
        sink.close()
        sink.emit(Move(level_id="L1", generation_id=None, turn=2, x=0, y=0))  # dropped, no crash
        assert len(list(store.iter_events())) == 3


def test_unwritable_store_keeps_events_for_the_next_flush(tmp_path):
    with Store.open(tmp_path / "forge.db") as store:
        sink = StoreSink(store)
        real = store.record_events
        calls = {"n": 0}

        def flaky(events):
            calls["n"] += 1
            if calls["n"] == 1:
                raise StoreError("disk full")
            return real(events)

        store.record_events = flaky  # type: ignore[method-assign]
        sink.emit(Move(level_id="L1", generation_id=None, turn=1, x=1, y=1))
        sink.emit(end("g"))  # first write fails: logged, kept
        assert sink.pending == 2
        sink.flush()
        assert sink.pending == 0 and len(list(store.iter_events())) == 2


def test_owning_sink_closes_its_store(tmp_path):
    store = Store.open(tmp_path / "forge.db")
    with StoreSink(store, owns_store=True):
        pass
    with pytest.raises(StoreError, match="closed"):
        store.record_fun("g", 0.5)
