"""The training gates judge a generic call site's student by agreement with the teacher, not by form.

Reproduces issue 13: a student whose held-out answers were all well-formed
and all wrong passed every gate (validity 1.0) and was promoted.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from tests.fakes import jac_support as support  # noqa: E402
from generator import train as train_cli  # noqa: E402
from generator.local import student as student_mod  # noqa: E402
from generator.store.records import CallRecord  # noqa: E402
from generator.local.registry import Registry  # noqa: E402
from generator.store import Store  # noqa: E402
from trainer import pipeline  # noqa: E402
from trainer.config import load_preset  # noqa: E402

bounty = support.load_fake("bounty_teacher")
pytestmark = pytest.mark.slow


def _capture(home, n=40, seed=0) -> str:
    """``n`` of the bounty teacher's answers, recorded as the capture plugin records them."""
    site = bounty.site()
    with Store.open(home / "forge.db") as store:
        for args in bounty.calls(n, seed):
            store.record_call(CallRecord(site=site, backend="llm", model="gpt-4o-mini", args=args,
                                         output_schema=bounty.OUTPUT_SCHEMA,
                                         result=bounty.bounty(args["monster"], args["town"]), valid=True, served=True))
    return site


def _stand_in(monkeypatch, rule) -> None:
    """Evaluate a stand-in student (fp32 and int8 alike) instead of the tiny model the run trained."""
    monkeypatch.setattr(student_mod.LocalStudent, "load", classmethod(lambda cls, *a, **k: bounty.RuleStudent(rule)))


def test_a_valid_but_wrong_student_is_registered_but_never_promoted(_forge_home, monkeypatch):
    site = _capture(_forge_home)
    _stand_in(monkeypatch, bounty.wrong_but_valid)
    report = pipeline.run(load_preset("tiny-test"), site=site, data_dir=_forge_home)  # validity gates wide open
    h = report.headline()
    assert h["validity"] == 1.0  # every answer is well-formed ...
    assert h["agreement"] == 0.0 and h["promoted"] is False  # ... and none is the teacher's
    why = report.stages["register"]["why"]
    assert "agreement 0.000 < 0.9" in why and "weakest field" in why
    assert Registry(_forge_home / "models").current(site) is None
    assert Registry(_forge_home / "models").versions(site)[0].state == "rejected"
    fields = report.to_dict()["agreement_fields"]
    assert set(fields) == {"title", "reward", "band"} and all(f["rate"] == 0.0 for f in fields.values())
    assert fields["title"]["similarity"] > 0.8  # close in form, wrong in substance
    md = (report.run_dir / "report.md").read_text()
    assert "## Agreement with the teacher (judge `fields`" in md and "| `band` | 0/" in md
    rows = [json.loads(line) for line in (report.run_dir / "samples.jsonl").read_text().splitlines()]
    assert rows and all(r["valid"] and r["agree"] is False and r["disagree"] for r in rows)


def test_a_student_that_gives_the_teachers_answers_is_promoted(_forge_home, monkeypatch):
    site = _capture(_forge_home)
    _stand_in(monkeypatch, bounty.bounty)
    h = pipeline.run(load_preset("tiny-test"), site=site, data_dir=_forge_home).headline()
    assert h["agreement"] == 1.0 and h["promoted"] is True
    assert Registry(_forge_home / "models").current(site).metrics["agreement"]["rate"] == 1.0


def test_validity_only_in_forge_toml_turns_agreement_off_for_a_site(_forge_home, monkeypatch):
    site = _capture(_forge_home)
    (_forge_home / "forge.toml").write_text('[judge.sites]\n"bounty_board:post_bounty" = "validity-only"\n')
    _stand_in(monkeypatch, bounty.wrong_but_valid)
    h = pipeline.run(load_preset("tiny-test"), site=site, data_dir=_forge_home).headline()
    assert h["agreement"] is None and h["promoted"] is True  # the user's choice: judged by form alone


def test_an_undertrained_student_steps_5_is_registered_not_promoted(_forge_home, capsys):
    site = _capture(_forge_home)
    code = train_cli.main(["--site", site, "--preset", "tiny-test", "--steps", "5", "--json",
                           "--data-dir", str(_forge_home)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["version"] == "v0001" and out["promoted"] is False
    assert out["agreement"] < 0.9 and out["weakest_field"] in ("title", "reward", "band")
    assert any("agreement" in r for r in out["gates"]["reasons"])
    assert Registry(_forge_home / "models").current(site) is None


def test_a_generic_site_trains_on_the_teachers_answers_not_its_students(_forge_home):
    from trainer.dataset import build_dataset

    site = _capture(_forge_home)
    with Store.open(_forge_home / "forge.db") as store:
        for args in bounty.calls(40, seed=7):  # a wrong but valid student's shadow answers, stored beside them
            store.record_call(CallRecord(site=site, backend="student", model_version="v0001", args=args,
                                         output_schema=bounty.OUTPUT_SCHEMA, valid=True,
                                         result=bounty.wrong_but_valid(args["monster"], args["town"])))
        ds = build_dataset(store, site, load_preset("tiny-test").dataset)
    examples = [*ds.train, *ds.eval]
    assert ds.stats["student_answers"] == 40
    assert examples and all(ex.result == bounty.bounty(ex.args["monster"], ex.args["town"]) for ex in examples)
