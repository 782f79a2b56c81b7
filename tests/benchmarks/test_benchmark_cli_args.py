"""Benchmark CLIs refuse a bad argument with a message before doing any work (exit 2, nothing on stdout)."""

from __future__ import annotations

import importlib
import json

import pytest


@pytest.mark.parametrize(("module", "argv", "says"), [
    ("benchmarks.generic_student", ["--examples", "0"], "--examples"),
    ("benchmarks.generic_student", ["--max-minutes", "0"], "--max-minutes"),
    ("benchmarks.generic_student", ["--heldout", "5", "--control-calls", "6"], "--control-calls"),
    ("benchmarks.level_student", ["--controls", "untrained,bogus"], "bogus"),
    ("benchmarks.level_student", ["--specs", "2"], "--specs"),
    ("benchmarks.distil_site", ["--capture", "10"], "--capture"),
    ("benchmarks.soak", ["--requests", "0"], "--requests"),
    ("benchmarks.serve", ["--connections", "0"], "--connections"),
    ("benchmarks.store", ["--clients", "0"], "--clients"),
    ("benchmarks.constrained", ["--libraries", "bogus"], "bogus"),
    ("benchmarks.train", ["--steps", "1"], "--steps"),
    ("benchmarks.train", ["--base", "no-such-base"], "neither 'micro'"),
    ("benchmarks.train", ["--examples", "4", "--batch-size", "8"], "--examples"),
])
def test_a_bad_argument_is_refused_with_a_message(module, argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert out == ""
    assert says in err


def test_level_student_without_a_training_run_says_how_to_make_one(tmp_path, capsys):
    from benchmarks.level_student import main

    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert "no finished training run" in err and "python -m generator.train" in err


def test_distil_site_judges_its_count_control_on_the_calls_the_gate_judged(tmp_path):
    from benchmarks.distil_site import _controls

    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)
    train = [{"band": "low", "reward": 65}] * 3 + [{"band": "high", "reward": 330}]
    (run / "dataset" / "train.jsonl").write_text("".join(json.dumps({"result_json": json.dumps(r)}) + "\n" for r in train))
    judged = [{"args": {"level": 1}, "teacher": {"band": "low", "reward": 65}},
              {"args": {"level": 7}, "teacher": {"band": "high", "reward": 330}}]
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged))
    out = _controls(run, "app:f#1", {"type": "object"}, tmp_path, n_base=0)
    assert (out["count"]["n"], out["count"]["agree"]) == (2, 1)  # the constant answer is right once in two
    assert out["untrained_base"] is None


def test_distil_site_refuses_a_data_dir_that_is_not_fresh(tmp_path, capsys):
    from benchmarks import distil_site

    (tmp_path / "forge.db").write_bytes(b"")
    with pytest.raises(SystemExit, match="not empty"):
        distil_site.main(["--data-dir", str(tmp_path), "--json"])
