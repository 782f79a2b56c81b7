"""``python -m generator.store``: SQLite -> PostgreSQL -> SQLite without losing a row, checked per table."""

from __future__ import annotations

import json

import msgspec
import pytest

from generator.store.records import CallRecord
from generator.store import Store
from generator.store.__main__ import main
from generator.store.transfer import store_summary

SITE = "jac.levels:design_level#0123abcd"


def fill(store: Store) -> None:
    calls = [CallRecord(site=SITE, backend=b, valid=v, served=True, latency_ms=1.5 + i, cost_usd=0.001 * i,
                        prompt_tokens=i, request_id=f"r{i}", args={"seed": i}, raw_output=f"out {i} é")
             for i, (b, v) in enumerate([("llm", True), ("student", False), ("procedural", None)] * 7)]
    store.record_calls(calls)
    store.record_call(calls[0])  # replaced: moves to the end
    for i, c in enumerate(calls[:10]):
        store.record_fun(c.call_id, i / 10, {"kills": float(i)})
        store.record_events([{"type": "level_end", "generation_id": c.call_id, "turn": i}])
    store.record_session("s1", {"config": {"deadline_s": 30}})
    store.set_site_state(SITE, "shadow", "v2", {"n": 30})
    store.add_site_event(SITE, "teacher->shadow", {"version": "v2"})
    store.add_rating(calls[0].call_id, {"fun": 4}, "nice", rater="ana")


def snapshot(store: Store) -> tuple:
    return ([msgspec.to_builtins(c) for c in store.iter_calls()], msgspec.to_builtins(store.site_stats()),
            msgspec.to_builtins(list(store.iter_events())), msgspec.to_builtins(store.list_ratings()),
            msgspec.to_builtins(store.site_events()), store.sessions())


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return code, json.loads(out[0])


def test_sqlite_to_postgres_and_back_loses_nothing(tmp_path, pg_url, capsys, _forge_home):
    src = _forge_home / "forge.db"
    with Store.open(src) as s:
        fill(s)
        before, summary = snapshot(s), store_summary(s)

    code, out = run(capsys, "migrate", "--to", pg_url)
    assert code == 0 and out["ok"]
    assert {t: v["copied"] for t, v in out["tables"].items()} == {t: v["rows"] for t, v in summary.items()}
    assert out["tables"]["calls"]["rows"] == 21 and out["tables"]["fun"]["rows"] == 10
    assert "forge.db" in out["from"] and out["to"] == pg_url

    with Store.open(pg_url) as pg:
        assert snapshot(pg) == before  # same records, order, fun joins, stats, events, ratings
        assert pg.add_site_event(SITE, "shadow->local") == 2  # ids continue after the copied ones

    back = tmp_path / "back" / "forge.db"
    code, out = run(capsys, "export", str(back), "--from", pg_url)
    assert code == 0 and out["ok"]
    with Store.open(back, configured=False) as b:
        assert len(b.site_events()) == 2
        assert snapshot(b)[:4] == before[:4]


def test_a_destination_with_data_is_refused_and_left_alone(tmp_path, pg_url, capsys):
    src = tmp_path / "a.db"
    with Store.open(src) as s:
        fill(s)
    with Store.open(pg_url) as pg:
        pg.record_call(CallRecord(site=SITE, backend="llm"))
    code, out = run(capsys, "import", str(src), "--to", pg_url)
    assert code == 2 and "not empty" in out["error"] and "calls: 1 rows" in out["error"]
    with Store.open(pg_url) as pg:
        assert pg.count_calls() == 1


def test_status_and_clear_errors(tmp_path, capsys, _forge_home):
    with Store.open() as s:
        fill(s)
    code, out = run(capsys, "status", "--checksums")
    assert code == 0 and out["backend"] == "sqlite" and out["rows"]["calls"] == 21
    assert out["schema_version"] == 1 and len(out["checksums"]["calls"]) == 64
    code, out = run(capsys, "import", str(tmp_path / "missing.db"))
    assert code == 2 and "does not exist" in out["error"]
    code, out = run(capsys, "migrate", "--to", "mysql://x/y")
    assert code == 2 and "postgresql://" in out["error"]
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0


def test_a_value_postgres_cannot_hold_is_reported_as_a_mismatch(tmp_path, pg_url, capsys):
    src = tmp_path / "a.db"
    with Store.open(src) as s:
        s.record_call(CallRecord(site=SITE, backend="llm", raw_output="a\x00b"))  # PostgreSQL text has no NUL
    code, out = run(capsys, "import", str(src), "--to", pg_url)
    assert code == 1 and not out["ok"]
    assert not out["tables"]["calls"]["same"] and out["tables"]["fun"]["same"]


def test_status_of_a_postgres_store_counts_rows_dropped_by_full_buffers(pg_server, pg_url, capsys, monkeypatch):
    monkeypatch.setenv("FORGE_DB_BUFFER_ROWS", "2")
    with Store.open(pg_url) as s:
        pg_server.shutdown()
        try:
            for _ in range(5):
                s.record_call(CallRecord(site=SITE, backend="llm"))
        finally:
            pg_server.start_again()
        s._next_try = 0.0
        assert s.count_calls() == 2
    code, out = run(capsys, "status", "--url", pg_url)
    assert code == 0 and out["backend"] == "postgresql" and out["store"] == pg_url
    assert out["rows"]["calls"] == 2 and out["rows"]["events"] == 1 and out["buffer_overflow_rows"] == 3
    pg_server.shutdown()
    try:
        code, out = run(capsys, "status", "--url", pg_url)
    finally:
        pg_server.start_again()
    assert code == 2 and "unreachable" in out["error"]
