"""End to end without a window: an engine Session plays facade levels with a bot;
every level is a served, valid call in the store with its telemetry and fun score."""

from __future__ import annotations

import pytest

pytest.importorskip("engine.core.session")
pytest.importorskip("generator.backends.procedural")

from engine.core.session import Session  # noqa: E402
from generator.facade import LevelGenerator  # noqa: E402
from generator.store import Store  # noqa: E402


def test_session_levels_are_recorded_with_fun(tmp_path):
    with Store.open(tmp_path / "forge.db") as store:
        gen = LevelGenerator(["procedural"], store=store)
        sink = gen.telemetry_sink()
        with Session(gen, sink, session_id="s-e2e", seed=3) as session:
            reports = session.play("explorer", 2)
        sink.close()
        served = list(store.iter_calls(gen.site, served=True))
        assert len(served) >= 2 and all(c.record.valid and c.record.session_id == "s-e2e" for c in served)
        played = [c for c in served if c.fun is not None]
        assert len(played) == len(reports) == 2
        assert all(0.0 <= c.fun <= 1.0 and c.fun_features for c in played)
        types = {e.type for e in store.iter_events(played[0].record.call_id)}
        assert {"level_start", "level_end", "level_scored"} <= types
        assert store.sessions()[0][0] == "s-e2e"
