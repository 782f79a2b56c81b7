"""python -m generator.sites: the per-site table, JSON and JSONL export."""

from __future__ import annotations

import json

from generator.store.records import CallRecord
from generator.sites import main
from generator.store import Store

LEVEL = "jac.levels:design_level#00000000"
OTHER = "quiz:pick_answer#12345678"


def seed_store(home):
    with Store.open(home / "forge.db") as s:
        s.record_calls([
            CallRecord(site=LEVEL, backend="llm", valid=False, latency_ms=900, request_id="a", cost_usd=0.002,
                       prompt_tokens=800, completion_tokens=600),
            CallRecord(site=LEVEL, backend="llm", valid=True, served=True, latency_ms=1100, request_id="a",
                       cost_usd=0.002, prompt_tokens=900, completion_tokens=600),
            CallRecord(site=LEVEL, backend="student", valid=True, served=True, latency_ms=300, request_id="b"),
            CallRecord(site=OTHER, backend="mock", valid=True, latency_ms=2),
        ])
        s.set_site_state(LEVEL, "local", "v3", {})


def test_empty_store(capsys):
    assert main([]) == 0
    assert "no calls recorded yet" in capsys.readouterr().out


def test_a_data_dir_that_does_not_exist_is_reported_not_created(capsys, tmp_path):
    fresh = tmp_path / "nothing-here"
    assert main(["--data-dir", str(fresh)]) == 0
    assert "no calls recorded yet" in capsys.readouterr().out
    assert main(["--data-dir", str(fresh), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == []
    assert not fresh.exists()


def test_table(capsys, _forge_home):
    seed_store(_forge_home)
    assert main([]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(LEVEL))
    for cell in ("3", "67%", "local v3 (student)", "50%", "900", "2900", "0.0040", "0.0020"):
        assert cell in line, cell
    assert OTHER in out


def test_json_and_export(capsys, _forge_home, tmp_path):
    seed_store(_forge_home)
    out_file = tmp_path / "calls.jsonl"
    assert main(["--json", "--export", str(out_file), "--site", LEVEL]) == 0
    doc = json.loads(capsys.readouterr().out)
    sites = {s["site"]: s for s in doc["sites"]}
    assert sites[LEVEL]["calls"] == 3 and sites[LEVEL]["state"] == "local" and sites[OTHER]["calls"] == 1
    assert doc["exported"]["calls"] == 3 and len(out_file.read_text().splitlines()) == 3


def test_corrupt_store_is_exit_2(capsys, _forge_home):
    (_forge_home / "forge.db").write_bytes(b"garbage" * 500)
    assert main(["--json"]) == 2
    assert "move the file aside" in json.loads(capsys.readouterr().out)["error"]
