"""The state machine with agreement evidence (pure): a site judged by agreement serves only when the student
gives the teacher's answers, and is rolled back when spot checks stop agreeing."""

from __future__ import annotations

from generator.routing import Evidence, RoutingPolicy, RouteState, SiteStatus, decide

POLICY = RoutingPolicy()
EMPTY = Evidence.of([])


def _decide(status: SiteStatus, **ev: Evidence) -> object:
    return decide("bounty:post#1", status, promoted="v0001", previous=None,
                  shadow=ev.get("shadow", Evidence.of([True] * 40)), live=ev.get("live", EMPTY), live_fun=[],
                  baseline=EMPTY, baseline_fun=[], policy=POLICY,
                  shadow_agreement=ev.get("shadow_agreement"), live_agreement=ev.get("live_agreement"))


SHADOW = SiteStatus(RouteState.SHADOW, "v0001")
LOCAL = SiteStatus(RouteState.LOCAL, "v0001")


def test_valid_answers_that_disagree_keep_the_site_in_shadow():
    d = _decide(SHADOW, shadow_agreement=Evidence.of([False] * 40))
    assert d.after == SHADOW
    assert "agreement with the teacher 0.0%" in d.reason and d.evidence["shadow"]["rate"] == 1.0


def test_agreement_over_thirty_calls_with_a_high_enough_lower_bound_serves_locally():
    assert _decide(SHADOW, shadow_agreement=Evidence.of([True] * 29)).after == SHADOW  # too few
    d = _decide(SHADOW, shadow_agreement=Evidence.of([True] * 30))
    assert d.after == LOCAL and "lower bound 0.886" in d.reason
    # 34 of 40 agree (85 %), but the lower bound is 0.71: keep shadowing
    assert _decide(SHADOW, shadow_agreement=Evidence.of([True] * 34 + [False] * 6)).after == SHADOW


def test_without_agreement_evidence_validity_decides_as_before():
    assert _decide(SHADOW).after == LOCAL


def test_spot_checks_that_stop_agreeing_roll_back_and_few_of_them_do_not():
    assert _decide(LOCAL, live_agreement=Evidence.of([False] * 19)).after == LOCAL  # below rollback_min_samples
    d = _decide(LOCAL, live_agreement=Evidence.of([True] * 10 + [False] * 10))
    assert d.after.state is RouteState.ROLLED_BACK and "spot-checked agreement" in d.reason
    assert _decide(LOCAL, live_agreement=Evidence.of([True] * 19 + [False])).after == LOCAL
