"""``make demo`` in miniature: the whole loop runs, reports teacher beside student, and says when goals are missed."""

from __future__ import annotations

import json

from games.sample_dungeon.demo import main


def test_tiny_demo_runs_the_loop_and_reports_unmet_goals(tmp_path, capsys):
    # one session per phase, the seconds-long tiny-test preset: the student is promoted (its gates are
    # open) but cannot earn local serving from a single shadow session, so served_as_judged is missed
    code = main(["--data-dir", str(tmp_path), "--sessions", "1", "--levels", "2", "--shadow-sessions", "1",
                 "--bootstrap", "30", "--preset", "tiny-test", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["training"]["promoted"] is True and isinstance(out["training"]["gates"], dict)
    assert out["goals"]["valid_share"] and out["goals"]["trained_and_judged"] and not out["goals"]["served_as_judged"]
    assert out["goals_met"] is False
    assert (out["sessions"], out["levels"], out["valid_share"]) == (3, 6, 1.0)
    assert out["site_state"] == "shadow" and out["student_version"] == "v0001"
    assert out["teacher_latency_ms_p50"] > 0 and out["student_latency_ms_p50"] > 0  # the student shadowed
    assert out["inside_envelope_share"] is not None and out["largest_spec"] is not None
    report = tmp_path / "reports" / "demo"
    page = (report / "index.html").read_text()
    for column in ("teacher_p50_ms", "student_p50_ms", "fun_teacher", "fun_student", "local_share"):
        assert column in page
    assert any(p.name.startswith("teacher-") for p in report.glob("*.png"))
    assert json.loads((report / "summary.json").read_text())["levels"] == 6


def test_demo_goals_hold_routing_to_the_gates_verdict():
    from games.sample_dungeon.demo import _goals

    refused = {"exit_code": 0, "promoted": False, "gates": {"passed": False, "reasons": ["likeness: count wins"]}}
    promoted = {"exit_code": 0, "promoted": True, "gates": {"passed": True, "reasons": []}}
    base = {"valid_share": 1.0, "seconds": 300.0}
    # a refused student that served nothing: the loop kept its promise
    assert all(_goals({**base, "training": refused, "local_share": 0.0}).values())
    # a refused student that served levels anyway: routing broke the verdict
    assert not _goals({**base, "training": refused, "local_share": 0.2})["served_as_judged"]
    # a promoted student must take over
    assert all(_goals({**base, "training": promoted, "local_share": 0.95}).values())
    assert not _goals({**base, "training": promoted, "local_share": 0.5})["served_as_judged"]
    # the game's policy asked for sizes beyond what it was trained on: it must take over inside them,
    # and the teacher serving the rest is no failure
    assert all(_goals({**base, "training": promoted, "local_share": 0.4, "local_share_inside_envelope": 1.0}).values())
    assert not _goals({**base, "training": promoted, "local_share": 0.4,
                       "local_share_inside_envelope": 0.5})["served_as_judged"]
    # a trainer that crashed judged nothing
    crashed = _goals({**base, "training": {"exit_code": 1}, "local_share": 0.0})
    assert not crashed["trained_and_judged"] and not crashed["served_as_judged"]
