"""`python -m generator.train`: help, dataset export, --if-needed, bootstrap through the facade."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from generator.training import background
from generator import train as train_cli
from generator.store.callsite import LEVEL_SITE
from generator.store import Store
from tests.fakes.recorded_levels import fill as _fill

ROOT = Path(__file__).parents[2]


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, "-m", "generator.train", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--site", "--base", "--qlora", "--preset", "--steps", "--if-needed", "--export-dataset",
                 "--bootstrap", "--data-dir", "--json", "--resume"):
        assert flag in out.stdout


def test_export_dataset_writes_jsonl(_forge_home, tmp_path, capsys):
    _fill(_forge_home, 30)
    assert train_cli.main(["--preset", "tiny-test", "--export-dataset", str(tmp_path / "ds"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["site"] == LEVEL_SITE and out["train_examples"] + out["heldout_examples"] == 30
    rows = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == out["train_examples"] and rows[0]["text"].startswith("L 16x12")


def test_if_needed_waits_for_enough_new_data(_forge_home, capsys):
    _fill(_forge_home, 3)
    assert train_cli.main(["--preset", "tiny-test", "--if-needed", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trained"] is False and "need 8" in out["reason"]


def test_no_data_is_a_clear_error(_forge_home, capsys):
    assert train_cli.main(["--preset", "tiny-test", "--json"]) == 1
    assert "--bootstrap" in json.loads(capsys.readouterr().out)["error"]


def test_bad_override_is_reported(_forge_home, capsys):
    assert train_cli.main(["--preset", "tiny-test", "--set", "train.stepz=3"]) == 1
    assert "unknown key(s) stepz" in capsys.readouterr().err


def test_bootstrap_records_procedural_levels_through_the_facade(_forge_home, capsys):
    assert train_cli.main(["--preset", "tiny-test", "--bootstrap", "10", "--export-dataset",
                           str(_forge_home / "ds"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bootstrap"]["levels"] == 10
    with Store.open(_forge_home / "forge.db") as store:
        calls = [c.record for c in store.iter_calls(valid_only=True)]
    assert len(calls) >= 10 and all(c.backend == "procedural" for c in calls)


def test_launch_background_returns_at_once_and_logs(_forge_home):
    proc = background.launch_background(_forge_home, preset="tiny-test")
    assert proc.wait(timeout=120) == 0
    log = (_forge_home / "runs" / "background.log").read_text()
    line = next(x for x in log.splitlines() if x.startswith("{"))
    assert json.loads(line)["trained"] is False  # nothing recorded yet: nothing to train


def test_background_training_threads_wait_passively(_forge_home, monkeypatch):
    import subprocess

    seen = {}

    class _Fake:
        def __init__(self, cmd, **kw):
            seen.update(kw)

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(subprocess, "Popen", _Fake)
    background.launch_background(_forge_home)
    assert seen["env"]["OMP_WAIT_POLICY"] == "PASSIVE"  # spinning threads would fight the game for the cores
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    background.launch_background(_forge_home)
    assert seen["env"]["OMP_WAIT_POLICY"] == "ACTIVE"  # an explicit choice wins


def test_missing_tinyllama_weights_say_how_to_provide_them(_forge_home, tmp_path, monkeypatch, capsys):
    _fill(_forge_home, 30)
    monkeypatch.setenv("FORGE_TINYLLAMA", str(tmp_path / "nowhere"))
    assert train_cli.main(["--preset", "tiny-test", "--base", "tinyllama", "--qlora"]) == 1
    err = capsys.readouterr().err
    assert "FORGE_TINYLLAMA" in err and "--base micro" in err
    assert not list((_forge_home / "runs").glob("*/run.json"))  # refused before any work
