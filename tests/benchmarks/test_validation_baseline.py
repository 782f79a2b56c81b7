"""The benchmark's pure-Python baseline reaches the validator's verdicts on the benchmark levels."""

from __future__ import annotations

import json

import pytest

from benchmarks.baseline_validator import baseline_codes
from benchmarks.validate import BREAKS, DEFAULT_LEVELS, main, make_levels
from generator.validation import validate_batch, validate_level


@pytest.mark.parametrize("size", [(48, 32), (32, 24)])
def test_baseline_agrees_with_validator_on_benchmark_levels(size):
    levels, specs = make_levels(DEFAULT_LEVELS, *size, seed=0)  # every level of a default benchmark run
    reports = [validate_level(lv, sp) for lv, sp in zip(levels, specs)]
    assert 0.2 < sum(not r.valid for r in reports) / len(reports) < 0.5  # a real mix
    for lv, sp, r in zip(levels, specs, reports):
        assert baseline_codes(lv, sp) == set(r.codes()), (lv.name, r.failures)
    batch = validate_batch(levels, specs)
    assert [b.codes() for b in batch] == [r.codes() for r in reports]
    texts = validate_batch([lv.to_json() for lv in levels], specs)
    assert [b.codes() for b in texts] == [r.codes() for r in reports]


def test_every_break_kind_is_caught():
    assert len(BREAKS) == 6
    levels, specs = make_levels(60, 24, 16, seed=3, broken_share=1.0)
    assert not any(validate_level(lv, sp).valid for lv, sp in zip(levels, specs))


def test_benchmark_prints_one_json_object(capsys):
    assert main(["--json", "--levels", "30", "--repeat", "1", "--generate", "5", "--sizes", "20x14"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("levels_per_s", "batch_levels_per_s", "python_baseline_levels_per_s", "speedup",
                "procedural_levels_per_s"):
        assert out[key] > 0
    assert "20x14" in out["sizes"]
