"""``python -m generator.validate``: exit codes, human and JSON output, JSONL, stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from generator.validate import main
from tests.fakes.hand_levels import SPEC, good, put


@pytest.fixture
def files(tmp_path):
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(good(), indent=2))
    bad_doc = good()
    put(bad_doc, 5, 0, ".")
    bad_doc["enemies"][0].update(x=2, y=2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_doc))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xffnot json")
    lines = tmp_path / "many.jsonl"
    lines.write_text("\n".join([json.dumps(good()), json.dumps(bad_doc), json.dumps(good())]) + "\n")
    good_lines = tmp_path / "good.jsonl"
    good_lines.write_text(json.dumps(good()) + "\n" + json.dumps(good()) + "\n")
    return {"ok": ok, "bad": bad, "garbage": garbage, "many": lines, "good_lines": good_lines, "dir": tmp_path}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_file_exits_0(files, capsys):
    code, out, _ = run(capsys, files["ok"])
    assert code == 0 and out.startswith("VALID")
    code, out, _ = run(capsys, files["ok"], "--spec", SPEC.to_json().decode())
    assert code == 0


def test_invalid_file_exits_1_and_marks_the_map(files, capsys):
    code, out, _ = run(capsys, files["bad"])
    assert code == 1
    assert "V2.open_border" in out and "(5, 0)" in out and "V5.enemy_near_spawn" in out
    picture = out.split("failure; @ spawn, > exit):\n")[1].splitlines()
    assert picture[0].strip()[5] == "X" and picture[2].strip()[2] == "X"


def test_json_output_is_one_object(files, capsys):
    code, out, _ = run(capsys, files["bad"], "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["valid"] is False
    assert {f["code"] for f in doc["failures"]} == {"V2.open_border", "V5.enemy_near_spawn"}
    assert set(doc["failures"][0]) >= {"gate", "code", "message", "where"}
    assert doc["gates"]["V2"] == 1


def test_spec_mismatch_is_invalid(files, capsys):
    spec = '{"width": 30, "height": 12, "difficulty": 1, "enemies": 2, "items": 0, "theme": "crypt"}'
    code, out, _ = run(capsys, files["ok"], "--spec", spec)
    assert code == 1 and "V1.spec_width" in out
    path = files["dir"] / "spec.json"
    path.write_text(spec)
    assert run(capsys, files["ok"], "--spec", f"@{path}")[0] == 1


@pytest.mark.parametrize("case", ["garbage", "missing", "dir", "bad_spec", "empty", "spec_not_utf8",
                                  "spec_missing", "spec_huge", "fifo"])
def test_unreadable_input_exits_2_without_traceback(files, capsys, case):
    d = files["dir"]
    argv = {
        "garbage": [files["garbage"]],
        "missing": [d / "nope.json"],
        "dir": [d],
        "bad_spec": [files["ok"], "--spec", '{"width": 3}'],
        "empty": [d / "empty.json"],
        "spec_not_utf8": [files["ok"], "--spec", f"@{d / 'latin1.json'}"],
        "spec_missing": [files["ok"], "--spec", f"@{d / 'nope-spec.json'}"],
        "spec_huge": [files["ok"], "--spec", f"@{d / 'huge-spec.json'}"],
        "fifo": [d / "pipe"],
    }[case]
    (d / "empty.json").write_text("")
    (d / "latin1.json").write_bytes(b'{"theme": "caf\xe9"}')
    (d / "huge-spec.json").write_text('{"width": 30' + " " * 100_000 + "}")
    if case == "fifo" and not (d / "pipe").exists():
        os.mkfifo(d / "pipe")  # no writer: opening it would block forever
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in out + err
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 2 and json.loads(out)["valid"] is False


def test_jsonl_summary(files, capsys):
    code, out, _ = run(capsys, files["many"])
    assert code == 1
    assert "2/3 levels valid" in out and "line 2: V2.open_border" in out
    code, out, _ = run(capsys, files["many"], "--json")
    doc = json.loads(out)
    assert (doc["levels"], doc["valid_levels"], doc["invalid_levels"]) == (3, 2, 1)
    assert doc["gates"]["V2"] == 1 and doc["gates"]["V5"] == 1 and doc["gates"]["V6"] == 0
    assert doc["invalid"][0]["line"] == 2
    assert run(capsys, files["good_lines"])[0] == 0


def test_an_oversized_single_level_is_refused_without_reading_it_all(files, capsys, monkeypatch):
    import generator.validate as cli

    class Stream:  # a 300 MB level on standard input, counted as it is read
        served = 0

        def read(self, n=-1):
            n = 300_000_000 - self.served if n < 0 else min(n, 300_000_000 - self.served)
            self.served += n
            return b"{" + b" " * (n - 1) if n else b""

    stream = Stream()
    monkeypatch.setattr(cli.sys, "stdin", type("S", (), {"buffer": stream})())
    code, out, err = run(capsys, "-", "--json")
    assert code == 2 and "V0.too_large" in out and "Traceback" not in err
    assert stream.served <= 5_000_000  # one byte past the per-level limit, not the whole stream


def test_stdin_through_python_dash_m(files):
    data = files["bad"].read_bytes()
    proc = subprocess.run([sys.executable, "-m", "generator.validate", "-", "--json"], input=data,
                          capture_output=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["valid"] is False


def test_help_lists_the_gates(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit 0 all valid, 1 some" in " ".join(out.split()) and "V6" in out
