"""Gates: shared metrics on held-out specs, thresholds from the preset, never worse than current."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from engine.core.level import Level, Placed
from generator.store.callsite import LEVEL_SITE
from generator.evaluate.metrics import wilson_interval
from trainer.config import GateConfig, load_preset
from trainer.gates import Sample, decide, run_student, score


def _level(seed: int, spec: dict) -> dict:
    rng = np.random.default_rng(seed)
    w, h = spec["width"], spec["height"]
    grid = np.ones((h, w), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    inner = rng.random((h - 2, w - 2)) < 0.2
    inner[:2, :2] = inner[-2:, -2:] = False
    grid[1:-1, 1:-1][inner] = 1
    free = [(x, y) for y in range(1, h - 1) for x in range(1, w - 1) if grid[y, x] == 0 and x + y > 8 and (x, y) != (w - 2, h - 2)]
    pick = rng.permutation(len(free))
    ens = [Placed("rat", *free[i]) for i in pick[: spec["enemies"]]]
    its = [Placed("potion", *free[i]) for i in pick[spec["enemies"]: spec["enemies"] + spec["items"]]]
    return Level(name="t", grid=grid, spawn=(1, 1), exit=(w - 2, h - 2), enemies=ens, items=its,
                 theme=spec["theme"]).to_dict()


SPECS = [{"width": 16, "height": 12, "difficulty": 1, "enemies": i % 3, "items": 1, "theme": "crypt"} for i in range(10)]


def _samples(n_valid: int, *, same_as_training: bool = False) -> tuple[list[Sample], list[dict]]:
    training = [_level(100 + i, s) for i, s in enumerate(SPECS)]
    out = []
    for i, spec in enumerate(SPECS):
        ok = i < n_valid
        result = (training[i] if same_as_training else _level(i, spec)) if ok else None
        out.append(Sample({"spec": spec}, result, ok, [] if ok else ["V0.parse"], latency_ms=10.0 + i, tokens=200))
    return out, training


def test_score_uses_the_shared_metrics():
    samples, training = _samples(8)
    teacher = [_level(200 + i, s) for i, s in enumerate(SPECS)]
    m = score(LEVEL_SITE, samples, teacher_results=teacher, training_results=training)
    assert m["validity"] == 0.8 and m["validity_lower95"] == pytest.approx(wilson_interval(8, 10)[0])
    assert m["controllability"]["size"] == 0.8 and m["controllability"]["theme"] == 0.8
    assert 0 < m["controllability"]["joint"] <= 0.8
    assert 0.1 < m["diversity"] < 1 and m["teacher_diversity"] > 0 and m["diversity_ratio"] > 0
    assert m["novelty"] == 0.8  # every parsed level is new; unparsed ones are not novel
    assert m["latency_ms"]["n"] == 10 and m["tokens_per_output"]["mean"] == 200
    assert m["failures"] == {"V0.parse": 2}
    replay, training = _samples(10, same_as_training=True)
    assert score(LEVEL_SITE, replay, training_results=training)["novelty"] == 0.0


def test_gates_pass_fail_and_say_why():
    cfg = GateConfig(min_validity=0.7, min_validity_lower95=0.4, min_control_joint=0.0, min_diversity_ratio=0.5)
    good, training = _samples(9)
    teacher = [_level(300 + i, s) for i, s in enumerate(SPECS)]
    m = score(LEVEL_SITE, good, teacher_results=teacher, training_results=training)
    assert decide(m, cfg).passed
    bad = score(LEVEL_SITE, _samples(5)[0], teacher_results=teacher)
    res = decide(bad, cfg)
    assert not res.passed and any(r.startswith("validity 0.500 < 0.7") for r in res.reasons)
    blocked = decide(m, cfg, quantization_ok=False, quantization_reason="int8 validity fell 0.05")
    assert not blocked.passed and "int8 validity fell 0.05" in blocked.reasons
    assert decide(m, GateConfig(max_latency_p50_ms=5.0, min_validity=0, min_validity_lower95=0,
                                min_control_joint=0, min_diversity_ratio=0)).reasons[0].startswith("latency p50")


def test_not_worse_than_the_current_version():
    cfg = GateConfig(min_validity=0, min_validity_lower95=0, min_control_joint=0, min_diversity_ratio=0, not_worse_margin=0.02)
    m = score(LEVEL_SITE, _samples(8)[0])
    assert decide(m, cfg, current={"validity": 0.81, "controllability": {"joint": 0.0}}).passed
    res = decide(m, cfg, current={"validity": 0.9, "controllability": {"joint": 0.0}})
    assert not res.passed and "vs current 0.900" in res.reasons[0]


@dataclass
class _Out:
    text: str
    result: dict | None
    tokens: int
    latency_ms: float
    mean_logprob: float = 0.0


class _FakeStudent:
    """Answers every other call; raises on one."""

    def generate(self, args, *, seed, max_new_tokens=None):
        if args["n"] == 3:
            raise RuntimeError("boom")
        return _Out("x", {"name": f"n{args['n']}"} if args["n"] % 2 == 0 else None, tokens=5, latency_ms=2.0)


def test_run_student_judges_each_output_and_survives_crashes():
    samples = run_student(_FakeStudent(), "demo.mod:name#12345678", [{"n": i} for i in range(6)], seed=1)
    assert [s.valid for s in samples] == [True, False, True, False, True, False]
    assert samples[3].failures == ["error.RuntimeError"] and samples[1].failures == ["V0.parse"]
    m = score("demo.mod:name#12345678", samples)
    assert m["validity"] == 0.5 and "controllability" not in m


@pytest.mark.parametrize("name", ["quick", "standard"])
def test_real_presets_have_meaningful_gates(name):
    g = load_preset(name).gates
    assert g.min_validity >= 0.5 and g.min_validity_lower95 > 0 and g.eval_specs >= 50


def test_generic_sites_are_judged_by_their_schema():
    schema = {"type": "object", "required": ["title"]}
    samples = run_student(_FakeStudent(), "demo.mod:name#12345678", [{"n": 0}], output_schema=schema)
    assert not samples[0].valid and samples[0].failures == ["V0.schema.required"]


class _FlakyStudent:
    """A level student whose first sample for each spec is broken and whose second is valid."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def generate(self, args, *, seed=0, repair=False, **_):
        from generator.local.student import StudentOutput

        key = repr(args)
        self.seen[key] = self.seen.get(key, 0) + 1
        from engine.core.level import LevelSpec
        from generator.backends.procedural import generate_procedural

        result = None if self.seen[key] == 1 else generate_procedural(LevelSpec(**args["spec"]), seed).to_dict()
        return StudentOutput(text="", result=result, mean_logprob=-0.5, tokens=100, latency_ms=1.0)


def test_served_validity_counts_resampling_and_keeps_the_first_try_rate():
    calls = [{"spec": dict(SPECS[0], items=i)} for i in range(6)]
    raw = run_student(_FlakyStudent(), LEVEL_SITE, calls)
    served = run_student(_FlakyStudent(), LEVEL_SITE, calls, serve_tries=3)
    assert score(LEVEL_SITE, raw)["validity"] == 0.0
    m = score(LEVEL_SITE, served)
    assert m["validity"] == 1.0 and m["validity_first_try"] == 0.0
    only_one = run_student(_FlakyStudent(), LEVEL_SITE, calls, serve_tries=1)
    assert score(LEVEL_SITE, only_one)["validity"] == 0.0
