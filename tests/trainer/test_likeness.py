"""Likeness to the teacher beside controls: an untrained model must not be promoted (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.level import LevelSpec
from generator.store.callsite import LEVEL_SITE
from generator.backends.procedural import generate_procedural
from trainer.config import GateConfig, load_preset
from trainer.gates import decide, likeness_checks, run_student, score


def _spec(rng: np.random.Generator, theme: str) -> dict:
    return {"width": int(rng.integers(16, 21)), "height": 12, "difficulty": int(rng.integers(1, 6)),
            "enemies": int(rng.integers(0, 3)), "items": int(rng.integers(0, 2)), "theme": theme}


def _teacher(spec: dict, seed: int) -> dict:
    return generate_procedural(LevelSpec.from_dict(spec), seed=seed).to_dict()


@pytest.fixture(scope="module")
def heldout():
    rng = np.random.default_rng(7)
    themes = ("crypt", "cave", "fortress")
    training = [({"spec": s}, _teacher(s, i)) for i, s in enumerate(_spec(rng, themes[i % 3]) for i in range(60))]
    calls = [{"spec": _spec(rng, themes[i % 3])} for i in range(10)]
    teacher = [_teacher(c["spec"], 1000 + i) for i, c in enumerate(calls)]
    return calls, teacher, training


def test_an_untrained_model_passes_the_old_gates_but_is_refused_for_likeness(tiny_student_dir, heldout):
    from generator.local.student import LocalStudent
    from trainer.likeness import evaluate_likeness

    calls, teacher, training = heldout
    cfg = load_preset("quick").gates
    student = LocalStudent.load(tiny_student_dir, quantize=None, site=LEVEL_SITE)  # random weights
    samples = run_student(student, LEVEL_SITE, calls, seed=0, temperature=cfg.temperature,
                          serve_tries=cfg.serve_tries, serve_repair=cfg.serve_repair)
    metrics = score(LEVEL_SITE, samples, teacher_results=teacher, training_results=[r for _, r in training])
    likeness = evaluate_likeness(student, LEVEL_SITE, calls, teacher, training, seed=0, temperature=cfg.temperature)

    # what the issue reported: validity, counts and diversity come from the decoding rules, so random
    # weights clear every gate that does not compare the student with its controls
    old = GateConfig(**{**cfg.__dict__, "likeness_controls": ()})
    assert decide(metrics, old, likeness=likeness).passed

    result = decide(metrics, cfg, likeness=likeness)
    assert not result.passed
    failed = {c.name for c in result.checks if not c.ok}
    assert failed and all("_vs_" in name for name in failed)  # refused on likeness, nothing else
    assert {"pattern_jsd_vs_count", "nll_vs_count"} <= failed
    gens = likeness["generators"]
    assert gens["count"]["nll"] < gens["student"]["nll"] and gens["count"]["pattern_jsd"] < gens["student"]["pattern_jsd"]
    # the all-equal-logits control scores log(vocabulary) per tile, whatever it is asked
    assert gens["uniform"]["nll"] == pytest.approx(np.log(len(student.token_strings)), rel=1e-4)
    # every control went through the same decoding: sized as asked, first candidate judged
    assert all(gens[name]["valid"] is not None for name in ("untrained", "uniform", "count"))


def _report(student: dict, **controls: dict) -> dict:
    return {"generators": {"student": student, **controls}}


def test_likeness_checks_need_a_margin_over_every_control():
    cfg = GateConfig(likeness_controls=("untrained", "count"), likeness_margin=0.1, nll_margin=0.02)
    control = {"pattern_jsd": 0.5, "structure_w1": 2.0, "nll": 1.0}
    good = {"pattern_jsd": 0.44, "structure_w1": 1.7, "nll": 0.97}
    assert all(c.ok for c in likeness_checks(_report(good, untrained=control, count=control), cfg))
    close = {"pattern_jsd": 0.46, "structure_w1": 1.7, "nll": 0.97}  # better, but within the margin
    bad = [c for c in likeness_checks(_report(close, untrained=control, count=control), cfg) if not c.ok]
    assert [c.name for c in bad] == ["pattern_jsd_vs_untrained", "pattern_jsd_vs_count"]
    assert "0.460 > (1 - 0.1) x 0.500" in bad[0].why
    not_nll = {"pattern_jsd": 0.1, "structure_w1": 0.1, "nll": 0.99}
    assert [c.name for c in likeness_checks(_report(not_nll, count=control), GateConfig(likeness_controls=("count",)))
            if not c.ok] == []
    assert not likeness_checks(_report(not_nll, count=control), cfg)[0].ok  # untrained control missing
    assert not likeness_checks(None, cfg)[0].ok  # not measured: refused, never waved through
    assert likeness_checks(None, GateConfig()) == []  # no controls named: reported only


def test_the_uniform_control_samples_what_a_zero_head_model_samples(tiny_student_dir):
    from generator.local.controls import uniform_like, zero_head_like
    from generator.local.student import LocalStudent

    student = LocalStudent.load(tiny_student_dir, quantize=None, site=LEVEL_SITE)
    spec = {"width": 18, "height": 13, "difficulty": 2, "enemies": 2, "items": 1, "theme": "cave"}
    for seed in (0, 1):
        a = zero_head_like(student).generate({"spec": spec}, seed=seed, temperature=0.8)
        b = uniform_like(student).generate({"spec": spec}, seed=seed, temperature=0.8)
        assert a.text == b.text and a.result == b.result
