"""Short `jac run` programs produce shadow evidence, and only a student that agrees with the teacher goes local.

Each run is a real ``jac run docs/examples/bounty_board.jac`` (30 quick calls)
against the bounty teacher on 127.0.0.1.  The student is a stand-in that
answers the teacher's rule (or a valid but wrong one) behind the real
loader interface (``tests/fakes/jac_stand_in.py``): training a student that
learns the rule takes minutes.  Reproduces issue 13: a short program never
produced shadow evidence (the student was still loading at exit and every
attempt was recorded as a failure), and shadow -> local judged only validity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import jac_support as support  # noqa: E402

bounty = support.load_fake("bounty_teacher")
STAND_IN = support.FAKES / "jac_stand_in.py"
CALLS = 30
pytestmark = pytest.mark.slow


def _run(home: Path, seed: int, student: str | None = None, *, served: str = "right",
         **env_extra: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """One program run; returns the process and how many requests the teacher got.

    ``served``: whose answers the program must print, ``right`` (the teacher's rule) or ``wrong``.
    """
    cmd = [sys.executable, str(STAND_IN), student, "run", str(bounty.PROGRAM)] if student else \
        [str(Path(sys.executable).with_name("jac")), "run", str(bounty.PROGRAM)]
    with bounty.server() as teacher:
        env = {**os.environ, "OPENAI_BASE_URL": teacher.url, "OPENAI_API_KEY": "sk-forge-shadow-runs",
               "BYLLM_DEFAULT_MODEL": "gpt-4o-mini", "FORGE_HOME": str(home), "BOUNTY_CALLS": str(CALLS),
               "BOUNTY_SEED": str(seed), **env_extra}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        asked = len(teacher.requests)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rule = bounty.bounty if served == "right" else bounty.wrong_but_valid
    expected = [rule(a["monster"], a["town"]) for a in bounty.calls(CALLS, seed)]
    assert proc.stdout.splitlines() == [f"BOUNTY {b['title']} | {b['reward']} | {b['band']}" for b in expected]
    return proc, asked


def _records(home: Path) -> list[Any]:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        return [c.record for c in store.iter_calls(bounty.site())]


def _state(home: Path) -> tuple[str, str | None] | None:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        row = store.get_site_state(bounty.site())
        return None if row is None else (row.state, row.version)


def _promote_stand_in(home: Path) -> str:
    """What `python -m generator.train` does once the gates pass: a registered, promoted version."""
    from generator.local.registry import Registry

    model_dir = home / "stand-in-model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"stand-in: the loader is swapped")
    registry = Registry(home / "models")
    version = registry.add_version(bounty.site(), model_dir, {"base": "stand-in", "state": "passed"})
    registry.promote(bounty.site(), version)
    return version


def _captured_and_promoted(home: Path) -> str:
    _, asked = _run(home, seed=0)  # run 1: no model yet; the teacher answers and is captured
    assert asked == CALLS and _state(home) is None
    return _promote_stand_in(home)


def test_a_student_that_agrees_reaches_local_within_two_runs_of_its_promotion(_forge_home):
    version = _captured_and_promoted(_forge_home)

    # Run 2: shadow.  30 quick calls; the student loads (1 s) at the session start, in the background,
    # and its answers to every call are finished at exit, each paired with the teacher's answer.
    proc, asked = _run(_forge_home, seed=1, student="right")
    assert asked == CALLS and _state(_forge_home) == ("shadow", version)
    assert f"student {version} loaded in" in proc.stderr  # the load time is shown
    shadows = [r for r in _records(_forge_home) if r.backend == "student"]
    assert len(shadows) == CALLS and all(r.valid is True and not r.served for r in shadows)
    teacher_ids = {r.call_id for r in _records(_forge_home) if r.backend == "llm"}
    assert all(r.request_id in teacher_ids for r in shadows)

    # Run 3: 30/30 agreeing shadow answers (Wilson lower bound 0.886 >= 0.80): the student serves.
    _, asked = _run(_forge_home, seed=2, student="right")
    assert _state(_forge_home) == ("local", version)
    assert asked <= 5  # only spot checks, if any, reach the teacher
    served = [r for r in _records(_forge_home) if r.backend == "student" and r.served]
    assert len(served) == CALLS - asked


def test_spot_checks_roll_back_a_local_student_whose_answers_stop_agreeing(_forge_home):
    version = _captured_and_promoted(_forge_home)
    (_forge_home / "forge.toml").write_text("[routing]\nspot_check_rate = 1.0\nrollback_min_samples = 20\n")
    _run(_forge_home, seed=1, student="right")  # shadow
    # local; every served call is also asked of the teacher, in the background
    _, checked_right = _run(_forge_home, seed=2, student="right", BOUNTY_PAUSE_S="0.15")
    assert _state(_forge_home) == ("local", version) and checked_right >= 20
    checks = [r for r in _records(_forge_home) if r.backend == "llm" and not r.served]
    assert len(checks) == checked_right and all(r.request_id for r in checks)

    # The same version now answers wrongly (as a drifted student would): served, since its answers are
    # well-formed, but every spot check disagrees ...
    # (A spot check runs after the call was served; one still queued when the program ends is dropped,
    # so these runs take 0.15 s per notice, as a program doing other work between calls would.)
    _, checked_wrong = _run(_forge_home, seed=3, student="wrong", served="wrong", BOUNTY_PAUSE_S="0.15")
    assert checked_wrong >= 20
    # ... and the next run's session start rolls it back: the teacher serves again.
    _, asked = _run(_forge_home, seed=4, student="wrong")
    assert _state(_forge_home) == ("rolled_back", None) and asked == CALLS
    from generator.store import Store

    with Store.open(_forge_home / "forge.db") as store:
        (event,) = [e for e in store.site_events(bounty.site()) if e.kind == "local->rolled_back"]
    reason = event.evidence["reason"]  # run 2: all agree, run 3: none do
    assert "spot-checked agreement with the teacher" in reason and "rolled back to the teacher" in reason
    live = event.evidence["live_agreement"]
    assert (live["valid"], live["n"]) == (checked_right, checked_right + checked_wrong)


def test_a_valid_but_wrong_student_never_reaches_local(_forge_home):
    version = _captured_and_promoted(_forge_home)
    for seed in (1, 2, 3):
        _, asked = _run(_forge_home, seed=seed, student="wrong")
        assert asked == CALLS and _state(_forge_home) == ("shadow", version)  # the teacher serves every call
    shadows = [r for r in _records(_forge_home) if r.backend == "student"]
    assert len(shadows) == 3 * CALLS and all(r.valid is True for r in shadows)  # well-formed, every one ...
    out = subprocess.run([sys.executable, "-m", "generator.sites", "--json", "--data-dir", str(_forge_home)],
                         capture_output=True, text=True, timeout=120)
    (row,) = [s for s in json.loads(out.stdout)["sites"] if s["site"] == bounty.site()]
    agreement = row["agreement"]  # ... and none is the teacher's answer
    assert agreement["judge"]["mode"] == "fields" and agreement["version"] == version
    assert (agreement["shadow"]["n"], agreement["shadow"]["agree"]) == (3 * CALLS, 0)
    assert agreement["shadow"]["weakest_field"] == "title"
    table = subprocess.run([sys.executable, "-m", "generator.sites", "--data-dir", str(_forge_home)],
                           capture_output=True, text=True, timeout=120).stdout
    assert "0% of 90" in table


def test_a_short_program_that_ends_while_the_student_loads_still_yields_its_answers(_forge_home):
    version = _captured_and_promoted(_forge_home)
    # The student takes 4 s to load; the program's 30 calls are done long before that.
    _run(_forge_home, seed=1, student="right", STAND_IN_LOAD_S="4")
    shadows = [r for r in _records(_forge_home) if r.backend == "student"]
    assert len(shadows) == CALLS and all(r.valid is True for r in shadows)


def test_calls_beyond_the_backlog_or_the_exit_wait_are_recorded_as_skipped_not_failed(_forge_home):
    version = _captured_and_promoted(_forge_home)
    (_forge_home / "forge.toml").write_text("[routing]\nshadow_backlog = 10\nshadow_exit_wait_s = 0.5\n")
    _run(_forge_home, seed=1, student="right", STAND_IN_LOAD_S="2")
    shadows = [r for r in _records(_forge_home) if r.backend == "student"]
    assert len(shadows) == CALLS and all(r.model_version == version for r in shadows)
    skipped = [r for r in shadows if r.valid is None]
    assert skipped and all(r.failures[0]["code"] == "V0.skipped" for r in skipped)
    assert not [r for r in shadows if r.valid is False]  # nothing counted against the student


def test_the_guide_names_the_site_and_config_the_program_really_has(tmp_path):
    """docs/distil-a-call-site.md walks this program: its site id and its [judge] example must be real."""
    import re

    from generator.evaluate.agreement import JudgeConfig

    guide = (Path(__file__).resolve().parents[3] / "docs" / "distil-a-call-site.md").read_text(encoding="utf-8")
    assert "docs/examples/bounty_board.jac" in guide and bounty.site() in guide
    (toml,) = [b for b in re.findall(r"```toml\n(.*?)```", guide, re.S) if "[judge" in b]
    (tmp_path / "forge.toml").write_text(toml, encoding="utf-8")
    spec = JudgeConfig.load(tmp_path).for_site(bounty.site(), bounty.OUTPUT_SCHEMA)
    assert (spec.mode, spec.float_tolerance, spec.min_similarity) == ("fields", 0.01, 0.85)
