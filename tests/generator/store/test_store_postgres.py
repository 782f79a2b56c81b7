"""The PostgreSQL store: chosen by URL, migrated like SQLite, and a server that goes away costs no level."""

from __future__ import annotations

import logging
import threading

import pytest

from generator.errors import ConfigError, StoreError
from generator.paths import db_path
from generator.store.records import CallRecord
from generator.store import SCHEMA_VERSION, Store, StoreUnreachable
from generator.store.schema import TABLES

SITE = "jac.levels:design_level#0123abcd"


def rec(i: int = 0, **over) -> CallRecord:
    return CallRecord(site=SITE, backend="procedural", valid=True, attempt=i + 1, **over)


def test_both_dialects_make_the_same_tables_and_columns(tmp_path, pg_url):
    with Store.open(tmp_path / "forge.db") as lite, Store.open(pg_url) as pg:
        for table in TABLES:
            lite_cols = [r[1] for r in lite._conn.execute(f"PRAGMA table_info({table})")]
            pg_cols = [r[0] for r in pg._conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (table,))]
            assert [c for c in pg_cols if c != "rowid"] == lite_cols, table
        assert lite.schema_version == pg.schema_version == SCHEMA_VERSION
        assert pg.integrity_ok()


def test_url_from_the_environment_or_forge_toml_redirects_the_data_dir_store(pg_url, _forge_home, monkeypatch):
    monkeypatch.setenv("FORGE_DB_URL", pg_url)
    with Store.open(db_path()) as s:  # what the facade, trainer and CLIs open
        assert s.backend == "postgresql" and s.path == pg_url
        s.record_call(rec())
    assert not (_forge_home / "forge.db").exists()
    monkeypatch.delenv("FORGE_DB_URL")
    (_forge_home / "forge.toml").write_text(f'[store]\nurl = "{pg_url}"\n')
    with Store.open() as s:
        assert s.backend == "postgresql" and s.count_calls() == 1
    with Store.open(db_path(), configured=False) as s:  # the file, whatever is configured
        assert s.backend == "sqlite" and s.count_calls() == 0


def test_bad_urls_are_clear_errors(_forge_home, monkeypatch):
    monkeypatch.setenv("FORGE_DB_URL", "mysql://x@y/z")
    with pytest.raises(ConfigError, match="neither postgresql"):
        Store.open()
    monkeypatch.delenv("FORGE_DB_URL")
    (_forge_home / "forge.toml").write_text('[store]\nurll = "postgresql://x"\n')
    with pytest.raises(ConfigError, match="unknown store setting"):
        Store.open()


def test_an_unreachable_server_is_a_clear_error_without_the_password(pg_server, caplog):
    url = f"postgresql://forge:hunter2secret@127.0.0.1:{_closed_port()}/forge"
    with caplog.at_level(logging.WARNING), Store.open(url, connect_timeout_s=2) as s:  # opens disconnected
        s.record_call(rec())  # buffered
        with pytest.raises(StoreUnreachable) as err:
            s.count_calls()
        assert s.dropped_rows == 0
    assert s.dropped_rows == 1  # still away at close: the buffered row is counted as lost
    text = str(err.value) + " ".join(r.getMessage() for r in caplog.records)
    assert "hunter2secret" not in text and "forge:***@127.0.0.1" in str(err.value)
    assert "1 buffered rows were not written" in caplog.text


def test_a_server_that_refuses_us_is_a_clear_error(pg_server):
    with pytest.raises(StoreError, match='refused the connection.*database "no_such_db" does not exist'):
        Store.open(pg_server.url_for("no_such_db"))


def test_a_game_started_while_the_server_is_down_keeps_every_row(pg_server):
    url = pg_server.create_database()
    pg_server.shutdown()
    try:
        s = Store.open(url)  # the server is down: the store opens disconnected
        s.record_calls([rec(i) for i in range(3)])
        assert s.buffer_status()["buffered_rows"] == 3
    finally:
        pg_server.start_again()
    s._next_try = 0.0
    assert s.count_calls() == 3 and s.schema_version == SCHEMA_VERSION  # migrated on the first connection
    s.close()
    pg_server.drop_database(url)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_opening_a_fresh_database_migrate_it_once(pg_url):
    errors: list[BaseException] = []
    versions: list[int] = []

    def opener() -> None:
        try:
            with Store.open(pg_url) as s:
                versions.append(s.schema_version)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and versions == [SCHEMA_VERSION] * 6


def test_a_replaced_call_moves_to_the_end_like_sqlite(store_target):
    with Store.open(store_target) as s:
        a, b = rec(0), rec(1)
        s.record_calls([a, b])
        s.record_call(a)
        assert [c.record.call_id for c in s.iter_calls()] == [b.call_id, a.call_id]


def test_nul_characters_are_stored_on_both(store_target):
    with Store.open(store_target) as s:
        s.record_call(rec(raw_output="a\x00b", args={"k": "x\x00y"}))
        got = next(s.iter_calls()).record
        assert got.args == {"k": "x\x00y"}  # JSON columns keep it escaped
        assert got.raw_output in ("a\x00b", "a\ufffdb")  # PostgreSQL text cannot hold NUL


# ---------------------------------------------------------------------- outages


def test_a_restarted_server_loses_no_rows(pg_server, pg_url, caplog):
    with Store.open(pg_url) as s:
        s.record_calls([rec(i) for i in range(5)])
        pg_server.shutdown()
        try:
            with caplog.at_level(logging.WARNING, logger="generator"):
                for i in range(5, 25):  # 20 writes while the server is down: none raises
                    s.record_call(rec(i))
                s.record_events([{"type": "level_end", "generation_id": "g", "turn": 3}])
                s.record_fun("g", 0.5)
                s.set_site_state(SITE, "shadow", "v2")
                assert s.buffer_status()["buffered_rows"] == 23 and not s.buffer_status()["connected"]
                assert s.get_site_state(SITE).state == "shadow"  # routing keeps its last known state
                with pytest.raises(StoreError, match="unreachable"):
                    s.add_rating("g", {"fun": 3})  # a person can retry; never buffered
        finally:
            pg_server.start_again()
        s._next_try = 0.0  # do not wait out the reconnect backoff
        assert s.count_calls() == 25
        assert [c.record.attempt for c in s.iter_calls()] == list(range(1, 26))
        assert s.fun_of("g") == 0.5 and s.get_site_state(SITE).version == "v2"
        assert [e.type for e in s.iter_events("g")] == ["level_end"]
        assert s.buffer_status() == {"buffered_rows": 0, "dropped_rows": 0, "limit_rows": 10_000, "connected": True}
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1 and down[0].exc_info is None  # one warning per outage, not a traceback per write


def test_a_full_buffer_drops_the_oldest_rows_and_says_how_many(pg_server, pg_url, monkeypatch):
    monkeypatch.setenv("FORGE_DB_BUFFER_ROWS", "5")
    with Store.open(pg_url) as s:
        s.record_call(rec(0))
        pg_server.shutdown()
        try:
            for i in range(1, 9):
                s.record_call(rec(i))
        finally:
            pg_server.start_again()
        s._next_try = 0.0
        assert [c.record.attempt for c in s.iter_calls()] == [1, 5, 6, 7, 8, 9]
        (ev,) = s.iter_events(type="store_buffer_overflow")
        assert ev.payload["dropped_rows"] == 3 and ev.payload["limit_rows"] == 5
        assert s.dropped_rows == 3


def test_a_player_loses_no_level_while_the_server_is_down(pg_server, pg_url, caplog):
    Session = pytest.importorskip("engine.core.session").Session
    from generator.facade import LevelGenerator

    with Store.open(pg_url) as store:
        gen = LevelGenerator(["procedural"], store=store)
        sink = gen.telemetry_sink()
        with caplog.at_level(logging.WARNING), Session(gen, sink, session_id="s-outage", seed=5) as session:
            reports = session.play("explorer", 1)
            pg_server.shutdown()
            try:
                reports += session.play("explorer", 2)  # mid-session outage
            finally:
                pg_server.start_again()
            store._next_try = 0.0
            reports += session.play("explorer", 1)
        sink.close()
        assert len(reports) == 4
        played = [c for c in store.iter_calls(gen.site, served=True) if c.fun is not None]
        assert len(played) == 4 and all(c.record.session_id == "s-outage" for c in played)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per level


def test_the_sites_cli_reads_a_configured_server(pg_url, monkeypatch, capsys):
    import json

    from generator.sites import main

    with Store.open(pg_url) as s:
        s.record_calls([rec(i) for i in range(3)])
    monkeypatch.setenv("FORGE_DB_URL", pg_url)
    assert main(["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == pg_url and [(x["site"], x["calls"]) for x in doc["sites"]] == [(SITE, 3)]


def test_a_bad_buffer_size_is_a_clear_error(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_DB_BUFFER_ROWS", "lots")
    with pytest.raises(StoreError, match="FORGE_DB_BUFFER_ROWS='lots' is not a whole number"):
        Store.open(pg_url)
    with Store.open(tmp_path / "forge.db") as s:  # SQLite has no server to lose: the setting does not apply
        assert s.backend == "sqlite"


def test_an_outage_without_writes_still_ends_and_a_second_one_warns_again(pg_server, pg_url, caplog):
    with caplog.at_level(logging.WARNING, logger="generator"), Store.open(pg_url) as s:
        for _ in range(2):
            pg_server.shutdown()
            try:
                with pytest.raises(StoreUnreachable):
                    s.count_calls()
                assert not s.buffer_status()["connected"]
            finally:
                pg_server.start_again()
            s._next_try = 0.0
            assert s.count_calls() == 0 and s.buffer_status()["connected"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in m for m in messages) == 2 and sum("reachable again" in m for m in messages) == 2


def test_a_row_the_server_refuses_is_dropped_and_counted_without_blocking_the_rest(pg_server, pg_url, caplog):
    with Store.open(pg_url) as s:
        pg_server.shutdown()
        try:
            s.record_call(rec(0))
            s._enqueue([("INSERT INTO fun (generation_id, score, features, created) VALUES (?,?,?,?)",
                         [(None, 0.5, "{}", 1.0)])])  # NOT NULL generation_id: the server refuses it
            s.record_call(rec(1))
        finally:
            pg_server.start_again()
        s._next_try = 0.0
        with caplog.at_level(logging.ERROR, logger="generator"):
            assert s.count_calls() == 2
        assert s.dropped_rows == 1 and "refused" in caplog.text
        assert s.buffer_status()["buffered_rows"] == 0
