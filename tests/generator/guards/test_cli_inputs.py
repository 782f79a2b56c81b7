"""Every CLI that reads a named file applies the validator CLI's input rules (issue 15, item 6).

Regular files only (a FIFO would hang, ``/dev/zero`` would read until memory
runs out), a size cap, UTF-8: refused with exit status 2 and a message that
names the file, never a traceback.  The commands run as subprocesses with an
address-space limit, so a regression fails fast instead of eating the box.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SPEC = '{"width":20,"height":14,"difficulty":3,"enemies":2,"items":1,"theme":"cave"}'
MEMORY_CAP = 3 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_cli(module: str, *args: str, home: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, preexec_fn=_limit_memory, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"python -m {module} {' '.join(args)} hung for {timeout} s")


def refused(proc: subprocess.CompletedProcess[str], *, json_out: bool = False, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    if json_out:
        doc = json.loads(proc.stdout)  # exactly one object
        assert isinstance(doc, dict)
        return doc["error"]
    assert proc.stderr.strip()
    return proc.stderr


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "spec.fifo"
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)  # takes no disk space
    return path


@pytest.mark.parametrize("how", ["@/dev/zero", "/dev/zero", "@/dev/urandom"])
def test_generate_spec_from_a_device_is_refused(how, _forge_home):
    err = refused(run_cli("generator.generate", "--spec", how, "--no-record", "--json", home=_forge_home),
                  json_out=True)
    assert "not a regular file" in err and "/dev/" in err


def test_generate_spec_from_a_fifo_is_refused(fifo, _forge_home):
    err = refused(run_cli("generator.generate", "--spec", f"@{fifo}", "--no-record", home=_forge_home))
    assert "not a regular file" in err and str(fifo) in err


def test_generate_spec_file_over_the_cap_is_refused_unread(tmp_path, _forge_home):
    big = sparse(tmp_path / "spec.json", 3 << 30)
    err = refused(run_cli("generator.generate", "--spec", str(big), "--no-record", home=_forge_home))
    assert "limit" in err and "spec.json" in err


def test_generate_spec_directory_and_binary_are_refused(tmp_path, capsys):
    from generator.generate import main

    assert main(["--spec", f"@{tmp_path}", "--no-record"]) == 2
    assert "directory" in capsys.readouterr().err
    binary = tmp_path / "spec.json"
    binary.write_bytes(b"\xff\xfe{" + b"\x00" * 10)
    assert main(["--spec", f"@{binary}", "--no-record"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_generate_spec_at_file_is_read(tmp_path, capsys):
    from generator.generate import main

    spec = tmp_path / "spec.json"
    spec.write_text(SPEC)
    assert main(["--spec", f"@{spec}", "--backend", "procedural", "--no-record", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["width"] == 20


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "sparse"])
def test_evaluate_specs_file_rules(target, fifo, tmp_path, _forge_home):
    path = {"/dev/zero": Path("/dev/zero"), "fifo": fifo,
            "sparse": sparse(tmp_path / "specs.jsonl", 3 << 30)}[target]
    err = refused(run_cli("generator.evaluate", "--specs", str(path), "--backends", "procedural", "--no-report",
                          "--quiet", home=_forge_home))
    assert str(path) in err and ("not a regular file" in err or "limit" in err)


def test_forge_toml_over_the_cap_is_a_config_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    sparse(home / "forge.toml", 3 << 30)
    err = refused(run_cli("generator.generate", "--spec", SPEC, "--backend", "procedural", home=home))
    assert "forge.toml" in err and "limit" in err


def test_forge_toml_fifo_is_a_config_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.mkfifo(home / "forge.toml")
    err = refused(run_cli("generator.generate", "--spec", SPEC, "--backend", "procedural", home=home))
    assert "forge.toml" in err and "not a regular file" in err


def test_train_preset_over_the_cap_is_refused(tmp_path, _forge_home):
    preset = sparse(tmp_path / "huge.yaml", 3 << 30)
    err = refused(run_cli("generator.train", "--preset", str(preset), "--json", home=_forge_home), json_out=True,
                  code=1)  # generator.train's status for every error
    assert "huge.yaml" in err and "limit" in err



# ------------------------------------------------------------------ item 9: duplicate keys in a spec

DUPLICATE = '{"width":20,"height":14,"difficulty":3,"enemies":2,"items":1,"theme":"cave","width":64}'


@pytest.mark.parametrize("text", [DUPLICATE, DUPLICATE.replace('":', '" :'),
                                  '{"width":20,"height":14,"difficulty":3,"enemies":2,"items":1,"theme":"cave",'
                                  '"theme":"crypt"}'])
def test_a_spec_with_a_duplicate_key_is_refused(text):
    from engine.core.errors import SpecError
    from engine.core.level import LevelSpec

    with pytest.raises(SpecError, match="twice"):
        LevelSpec.from_json(text)


def test_spec_cli_arguments_with_duplicate_keys_exit_2(tmp_path, capsys):
    from generator.generate import main as generate_main
    from generator.validate import main as validate_main

    assert generate_main(["--spec", DUPLICATE, "--no-record", "--json"]) == 2
    assert "'width' appears twice" in json.loads(capsys.readouterr().out)["error"]
    level = tmp_path / "level.json"
    level.write_text("{}")
    assert validate_main([str(level), "--spec", DUPLICATE]) == 2
    assert "'width' appears twice" in capsys.readouterr().err


def test_a_spec_with_unusual_spacing_but_no_duplicates_is_accepted():
    from engine.core.level import LevelSpec

    spec = LevelSpec.from_json(' { "width" : 20 , "height":14,"difficulty":3,"enemies":2,"items":1,"theme":"c\\":ve"}'
                               .replace('c\\":ve', "cave"))
    assert spec.width == 20
