"""`python -m generator.models` lists, shows, promotes and rolls back; --json prints one object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from generator import models
from generator.local.registry import Registry

SITE = "jac.levels:design_level#1a2b3c4d"


def _setup(home: Path) -> Registry:
    reg = Registry(home / "models")
    for tag in "ab":
        d = home / f"src-{tag}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(tag.encode())
        reg.add_version(SITE, d, {"base": "micro", "metrics": {"validity": 0.5}})
    return reg


def test_promote_show_rollback_json(_forge_home, capsys):
    reg = _setup(_forge_home)
    assert models.main(["promote", "v0001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"] == "v0001"
    assert models.main(["promote", "v0002", "--site", SITE, "--json"]) == 0
    capsys.readouterr()
    assert models.main(["show", "--json", "--verify"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["version"] == "v0002" and shown["manifest"]["state"] == "current" and shown["verified"]
    assert models.main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["sites"][0]["current"] == "v0002" and len(listed["sites"][0]["versions"]) == 2
    assert models.main(["rollback", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"] == "v0001"
    assert reg.current(SITE).version == "v0001"


def test_refusals_exit_1_with_a_reason(_forge_home, capsys):
    reg = _setup(_forge_home)
    assert models.main(["promote", "v0042"]) == 1
    assert "no version 'v0042'" in capsys.readouterr().err
    (reg.site_dir(SITE) / "v0001" / "model.safetensors").write_bytes(b"evil")
    assert models.main(["promote", "v0001", "--json"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["kind"] == "CorruptModelError" and "checksum mismatch" in err["error"]


def test_people_output_and_help(_forge_home):
    _setup(_forge_home)
    root = Path(__file__).parents[2]
    out = subprocess.run([sys.executable, "-m", "generator.models", "list"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0 and "v0002" in out.stdout and "no local model" in out.stdout
    helped = subprocess.run([sys.executable, "-m", "generator.models", "--help"], cwd=root, capture_output=True, text=True)
    assert helped.returncode == 0 and "rollback" in helped.stdout


def test_list_shows_agreement_beside_validity(_forge_home, capsys):
    """A version refused for agreement (valid answers, not the teacher's) says so in `list`, not only validity=1.000."""
    reg = Registry(_forge_home / "models")
    d = _forge_home / "src"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"x")
    reg.add_version(SITE, d, {"base": "smollm2-135m", "metrics": {
        "validity": 1.0, "agreement": {"n": 20, "agree": 0, "rate": 0.0, "weakest_field": "reward"}}})
    assert models.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "validity=1.000" in out and "agreement=0.000" in out


def test_show_says_which_specs_a_level_version_serves(_forge_home, capsys):
    reg = Registry(_forge_home / "models")
    d = _forge_home / "src"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"w")
    reg.add_version(SITE, d, {"base": "micro", "metrics": {"spec_ranges": {"width": [16, 24], "area": [192, 384]}}})
    assert models.main(["show", "--site", SITE, "--version", "v0001"]) == 0
    assert "serves specs with width 16-24, area 192-384" in capsys.readouterr().out
