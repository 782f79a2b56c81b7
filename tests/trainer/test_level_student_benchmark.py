"""benchmarks.level_student: its held-out set covers the spec range, and its acceptance bar is issue 14's."""

from __future__ import annotations

from benchmarks.level_student import acceptance, heldout_specs
from generator.evaluate.metrics import size_band


def test_heldout_set_is_seeded_and_spread_over_every_size_band():
    specs = heldout_specs(12, seed=3)
    assert specs == heldout_specs(12, seed=3) and specs != heldout_specs(12, seed=4)
    assert [size_band(s) for s in specs] == ["small"] * 4 + ["medium"] * 4 + ["large"] * 4
    assert max(s["width"] for s in specs) > 40 and max(s["height"] for s in specs) > 30


def _report(student: dict, rooms: float, path: float) -> dict:
    control = {"pattern_jsd": 0.3, "structure_w1": 2.0, "nll": 1.0}
    return {"teacher": {"mean": {"rooms": 4.0, "path": 40.0}},
            "generators": {"student": {**student, "mean": {"rooms": rooms, "path": path}},
                           "untrained": control, "count": {**control, "nll": 0.5}}}


def test_acceptance_needs_every_metric_better_and_rooms_and_path_near_the_teacher():
    good = {"pattern_jsd": 0.1, "structure_w1": 1.0, "nll": 0.4}
    assert acceptance(_report(good, 4.5, 35.0))["met"]
    assert not acceptance(_report(good, 5.5, 35.0))["met"]  # rooms 37 % over the teacher's
    worse_nll = acceptance(_report({**good, "nll": 0.6}, 4.0, 40.0))
    assert not worse_nll["met"] and worse_nll["beats_untrained"]["nll"] and not worse_nll["beats_count"]["nll"]
