"""python -m generator.generate: pictures or one JSON object, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generator.generate import main

SPEC = '{"width":20,"height":14,"difficulty":3,"enemies":2,"items":1,"theme":"cave"}'
ROOT = Path(__file__).resolve().parents[2]


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "generator.generate", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "--backend" in out and "--spec" in out and "--json" in out


def test_bad_spec_is_exit_2_with_the_field(capsys):
    assert main(["--spec", SPEC.replace('"width":20', '"width":3'), "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert "LevelSpec.width" in err


def test_unreadable_spec_file(capsys, tmp_path):
    assert main(["--spec", str(tmp_path / "missing.json")]) == 2
    assert "neither JSON nor a readable file" in capsys.readouterr().err


def test_student_without_a_promoted_model_is_a_clear_error(capsys):
    assert main(["--spec", SPEC, "--backend", "student"]) == 2
    assert "no student model is promoted" in capsys.readouterr().err


@pytest.fixture
def real_pipeline():
    pytest.importorskip("generator.backends.procedural")
    pytest.importorskip("generator.validation")


def test_procedural_json(real_pipeline, capsys, _forge_home):
    assert main(["--spec", SPEC, "--backend", "procedural", "--n", "2", "--seed", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(_forge_home / "forge.db")
    assert [lv["seed"] for lv in doc["levels"]] == [4, 5]
    assert all(lv["backend"] == "procedural" and lv["level"]["width"] == 20 for lv in doc["levels"])


def test_picture_and_spec_file(real_pipeline, capsys, tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(SPEC)
    assert main(["--spec", str(spec_file), "--no-record"]) == 0
    out = capsys.readouterr().out
    assert "@" in out and ">" in out and "backend=procedural" in out and "recorded in" not in out


def test_llm_without_a_key_is_a_clear_error(capsys):
    assert main(["--spec", SPEC, "--backend", "llm", "--json"]) == 2
    assert "OPENAI_API_KEY" in json.loads(capsys.readouterr().out)["error"]


def test_llm_behind_a_dead_endpoint_still_serves_a_level(real_pipeline, capsys, monkeypatch):
    pytest.importorskip("generator.backends.teacher")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on port 9
    monkeypatch.setenv("FORGE_TEACHER_RETRIES", "0")
    assert main(["--spec", SPEC, "--backend", "llm", "--json", "--max-attempts", "1"]) == 0
    (lv,) = json.loads(capsys.readouterr().out)["levels"]
    assert lv["backend"] == "procedural" and lv["tried"] == ["llm", "procedural"]
