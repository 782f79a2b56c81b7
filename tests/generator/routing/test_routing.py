"""The routing state machine: teacher -> shadow -> local -> rolled back, decided from evidence."""

from __future__ import annotations

import pytest

from generator.errors import ConfigError
from generator.routing import Evidence, RoutingPolicy, RouteState, SiteStatus, decide

POLICY = RoutingPolicy(min_shadow_samples=30, promote_lower_bound=0.8, rollback_min_samples=20)
NONE = Evidence.of([])


def _decide(status, *, promoted="v1", previous=None, shadow=NONE, live=NONE, live_fun=(), baseline=NONE, baseline_fun=()):
    return decide(
        "levels:design_level#x", status, promoted=promoted, previous=previous, shadow=shadow, live=live,
        live_fun=list(live_fun), baseline=baseline, baseline_fun=list(baseline_fun), policy=POLICY,
    )


def test_a_site_without_a_promoted_version_stays_with_the_teacher():
    d = _decide(SiteStatus(), promoted=None)
    assert not d.changed and d.after.state is RouteState.TEACHER


def test_a_promoted_version_is_shadowed_first_never_served_straight_away():
    d = _decide(SiteStatus(), promoted="v1")
    assert d.after == SiteStatus(RouteState.SHADOW, "v1")


def test_shadow_needs_the_minimum_number_of_samples():
    d = _decide(SiteStatus(RouteState.SHADOW, "v1"), shadow=Evidence.of([True] * 29))
    assert not d.changed and "29/30" in d.reason


def test_shadow_promotes_when_the_wilson_lower_bound_clears_the_threshold():
    d = _decide(SiteStatus(RouteState.SHADOW, "v1"), shadow=Evidence.of([True] * 40))
    assert d.after == SiteStatus(RouteState.LOCAL, "v1")
    assert d.evidence["shadow"]["lower"] >= 0.8


def test_a_high_rate_on_too_few_samples_is_not_enough():
    # 34/40 = 85 % valid, but the 95 % lower bound is about 0.71
    d = _decide(SiteStatus(RouteState.SHADOW, "v1"), shadow=Evidence.of([True] * 34 + [False] * 6))
    assert d.after.state is RouteState.SHADOW and "keep shadowing" in d.reason


def test_local_without_regression_keeps_serving():
    live = Evidence.of([True] * 50, [0.6] * 50)
    base = Evidence.of([True] * 50, [0.6] * 50)
    d = _decide(SiteStatus(RouteState.LOCAL, "v1"), live=live, live_fun=[0.6] * 50, baseline=base, baseline_fun=[0.6] * 50)
    assert not d.changed


def test_a_validity_regression_rolls_back_to_the_teacher_and_rejects_the_version():
    live = Evidence.of([True] * 10 + [False] * 20)
    base = Evidence.of([True] * 50)
    d = _decide(SiteStatus(RouteState.LOCAL, "v1"), live=live, baseline=base)
    assert d.after == SiteStatus(RouteState.ROLLED_BACK, None, ("v1",))
    assert "live validity" in d.reason
    # the rejected version is not shadowed again; a new one is
    assert not _decide(d.after, promoted="v1").changed
    assert _decide(d.after, promoted="v2").after == SiteStatus(RouteState.SHADOW, "v2", ("v1",))


def test_a_significant_fun_drop_rolls_back_to_the_previous_version():
    live_fun = [0.30 + 0.01 * (i % 5) for i in range(30)]
    base_fun = [0.60 + 0.01 * (i % 5) for i in range(30)]
    d = _decide(
        SiteStatus(RouteState.LOCAL, "v2"), promoted="v2", previous="v1",
        live=Evidence.of([True] * 30, live_fun), live_fun=live_fun,
        baseline=Evidence.of([True] * 30, base_fun), baseline_fun=base_fun,
    )
    assert d.after == SiteStatus(RouteState.LOCAL, "v1", ("v2",))
    assert d.evidence["fun_p_value"] < 0.05


def test_noisy_fun_with_no_real_drop_does_not_roll_back():
    live_fun = [0.5, 0.7] * 15
    base_fun = [0.55, 0.65] * 15
    d = _decide(
        SiteStatus(RouteState.LOCAL, "v1"), live=Evidence.of([True] * 30, live_fun), live_fun=live_fun,
        baseline=Evidence.of([True] * 30, base_fun), baseline_fun=base_fun,
    )
    assert not d.changed


def test_a_newer_promotion_while_local_goes_back_to_shadow():
    d = _decide(SiteStatus(RouteState.LOCAL, "v1"), promoted="v2")
    assert d.after == SiteStatus(RouteState.SHADOW, "v2")


def test_unknown_policy_settings_are_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown field `min_shadow_sample` - at `\$\.routing`; known: min_shadow_samples,"):
        RoutingPolicy.from_mapping({"min_shadow_sample": 3})


class _Recorder:
    def __init__(self):
        self.records = []

    def record_call(self, record):
        self.records.append(record)


def test_a_spot_check_runs_after_the_served_output_is_returned():
    import threading

    from engine.core.level import LevelSpec
    from generator.backends import BackendOutput, BackendRequest
    from generator.routing import Router, SpotCheckBackend

    release, entered = threading.Event(), threading.Event()
    served = BackendOutput(raw="{}", model="student", model_version="v1")

    class Student:
        name = "student"

        def generate(self, request):
            return served

    class SlowTeacher:
        name = "llm"

        def generate(self, request):
            entered.set()
            assert release.wait(30), "the test never released the teacher"
            return BackendOutput(raw='{"name": "checked"}', model="teacher")

    router = Router(store=None, registry=None)
    recorder = _Recorder()
    backend = SpotCheckBackend(Student(), SlowTeacher(), "levels:design_level#x", recorder, rate=1.0,
                               validator=lambda out, req: (True, []), submit=router._submit_shadow)
    spec = LevelSpec(width=24, height=16, difficulty=3, enemies=3, items=2, theme="crypt")
    try:
        assert backend.generate(BackendRequest(spec, 7, deadline=1.0)) is served  # a deadline long past
        assert recorder.records == []  # the teacher is still held: the player did not wait for it
        release.set()
        assert router.drain(30) == 0
    finally:
        release.set()
        router.close()
    assert entered.is_set()
    (rec,) = recorder.records
    assert rec.args["spot_check"] and rec.args["seed"] == 7 and not rec.served
    assert (rec.backend, rec.valid, rec.result) == ("llm", True, {"name": "checked"})
