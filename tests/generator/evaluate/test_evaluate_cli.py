"""End to end: backends on the same seeded specs, the JSON shape, the report, clear errors."""

from __future__ import annotations

import json

import pytest

from engine.core.level import LevelSpec
from generator.backends import BackendOutput, BackendRequest, ProceduralBackend
from generator.evaluate.runner import EvaluationConfig, evaluate
from generator.evaluate.__main__ import main
from generator.evaluate.runner import generation_seed

SPECS = [
    {"width": 16, "height": 12, "difficulty": 2, "enemies": 1, "items": 1, "theme": "crypt"},
    {"width": 20, "height": 14, "difficulty": 3, "enemies": 2, "items": 0, "theme": "cave"},
]
RUBRIC_NAMES = {"structural", "constraints", "fun", "diversity", "cost"}


class FirstTryBroken:
    """Answers garbage on attempt 1 and a good procedural level once it gets feedback."""

    name = "flaky"

    def __init__(self) -> None:
        self.requests: list[BackendRequest] = []

    def generate(self, request: BackendRequest) -> BackendOutput:
        self.requests.append(request)
        if request.attempt == 1:
            return BackendOutput(raw='{"name": "oops", "rows": ["###"]}', model="fake", prompt_tokens=10)
        return ProceduralBackend().generate(request)


@pytest.fixture()
def spec_file(tmp_path):
    path = tmp_path / "specs.jsonl"
    path.write_text("# two small specs\n" + "\n".join(json.dumps(s) for s in SPECS) + "\n", encoding="utf-8")
    return path


def test_raw_and_after_retry_validity_use_the_real_validator():
    specs = [LevelSpec.from_dict(s) for s in SPECS]
    flaky = FirstTryBroken()
    ev = evaluate(specs, {"procedural": ProceduralBackend(), "flaky": flaky},
                  EvaluationConfig(seed=3, bots=("explorer",), progress=False))
    s = ev.scores["flaky"]["structural"]
    assert s.parts["raw"]["rate"] == 0.0
    assert s.score == 1.0
    assert s.parts["first_attempt_gate_failures"]["V0"] + s.parts["first_attempt_gate_failures"]["V1"] >= 2
    assert all(r.feedback for r in flaky.requests if r.attempt == 2)  # the retry was told what was wrong
    assert ev.scores["procedural"]["structural"].parts["raw"]["rate"] == 1.0
    # Same seeds at both backends, so both answer the same request.
    assert [g.seed for g in ev.generations["procedural"]] == [g.seed for g in ev.generations["flaky"]]
    assert ev.generations["procedural"][1].seed == generation_seed(3, 1, 0)
    assert all(g.plays and g.structure for g in ev.generations["procedural"])


def test_cli_json_shape_and_report(spec_file, tmp_path, capsys):
    report = tmp_path / "report"
    code = main(["--specs", str(spec_file), "--backends", "teacher,procedural", "--n", "2", "--seed", "1",
                 "--bots", "explorer", "--report", str(report), "--json", "--quiet"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert set(data["backends"]) == {"teacher", "procedural"}
    for per in data["backends"].values():
        assert set(per) == RUBRIC_NAMES
        for s in per.values():
            assert set(s) == {"score", "ci", "parts"} and len(s["ci"]) == 2
    assert data["backends"]["teacher"]["structural"]["score"] == 1.0  # no key: the teacher is procedural
    assert data["specs"] == 2 and data["n"] == 2
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "plots/gate_failures.png" in page and (report / "plots" / "gate_failures.png").exists()
    assert len(list((report / "levels").glob("*.png"))) == 4  # 2 specs x 2 backends
    assert len((report / "levels.jsonl").read_text().splitlines()) == 8


def test_cli_errors_are_clear(spec_file, tmp_path, capsys):
    assert main(["--specs", str(spec_file), "--backends", "student", "--quiet", "--no-report"]) == 2
    assert "no student model is promoted" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SPECS[0]) + "\n" + '{"width": 3}\n', encoding="utf-8")
    assert main(["--specs", str(bad), "--backends", "procedural", "--quiet", "--no-report"]) == 2
    assert f"{bad}:2:" in capsys.readouterr().err
    assert main(["--backends", "procedural"]) == 2
    assert main(["--specs", str(spec_file), "--backends", "nope", "--no-report"]) == 2
    assert "unknown backend" in capsys.readouterr().err


@pytest.fixture(scope="module")
def untrained_student(tiny_student_dir):
    """An untrained micro-1m student folder (no weights are downloaded)."""
    return tiny_student_dir


@pytest.mark.slow
def test_cli_compares_procedural_with_a_student_folder(untrained_student, tmp_path, capsys):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(SPECS[0]) + "\n", encoding="utf-8")
    code = main(["--specs", str(one), "--backends", f"procedural,student:{untrained_student}",
                 "--student-raw", "--max-attempts", "2", "--bots", "none", "--json", "--quiet",
                 "--no-report"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    label = f"student:{untrained_student.name}"  # the report's short label for a model folder
    student = data["backends"][label]
    assert set(student) == RUBRIC_NAMES
    assert 0.0 <= student["structural"]["parts"]["raw"]["rate"] <= student["structural"]["score"] <= 1.0
    assert student["cost"]["parts"]["completion_tokens"]["total"] > 0  # the model really generated
    assert data["backend_info"][label]["backend"] == "student"
    assert data["backends"]["procedural"]["structural"]["score"] == 1.0


@pytest.mark.slow
def test_controls_are_evaluated_beside_the_student_through_its_decoding(untrained_student, tmp_path, capsys):
    # What the decoding rules give without learning, read beside the student's scores (issue 14).
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(SPECS[0]) + "\n", encoding="utf-8")
    from tests.fakes.recorded_levels import fill

    (tmp_path / "home").mkdir()
    fill(tmp_path / "home", 12)  # the teacher's levels the count model is fitted on
    controls = ",".join(f"control:{kind}:{untrained_student}" for kind in ("uniform", "untrained", "count"))
    code = main(["--specs", str(one), "--backends", f"student:{untrained_student},{controls}",
                 "--student-raw", "--max-attempts", "1", "--bots", "none", "--json", "--quiet", "--no-report",
                 "--data-dir", str(tmp_path / "home")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for label in ("control:uniform", "control:untrained", "control:count"):
        assert set(data["backends"][label]) == RUBRIC_NAMES
        assert data["backend_info"][label]["model_versions"] == [label.replace(":", "-")]
    # a control with nothing to borrow from, or an unknown one, is a clear error (exit 2), not a crash
    for bad, says in (("control:count", "no level student"), ("control:bogus", "unknown control"),
                      (f"control:count:{untrained_student}", "no valid levels to fit the count model")):
        assert main(["--specs", str(one), "--backends", bad, "--bots", "none", "--no-report", "--quiet",
                     "--data-dir", str(tmp_path / "empty")]) == 2
        assert says in capsys.readouterr().err


@pytest.mark.slow
def test_student_raw_means_one_candidate_and_no_repair(untrained_student):
    from generator.evaluate.runner import resolve_backend

    backend = resolve_backend(f"student:{untrained_student}", student_tries=1, student_repair=False)
    assert (backend.max_tries, backend.batch, backend.repair) == (1, 1, False)
    assert resolve_backend(f"student:{untrained_student}").max_tries > 1  # the game's default resamples
