"""The per-site state machine: evidence in, one decision out (pure; the router applies it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from generator.evaluate.metrics import wilson_interval
from generator.routing.policy import RouteState, RoutingPolicy

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a decision was based on; stored with every state change."""

    n: int = 0
    valid: int = 0
    rate: float = 0.0
    lower: float = 0.0
    upper: float = 1.0
    fun_mean: float | None = None
    fun_n: int = 0

    @classmethod
    def of(cls, valid_flags: Sequence[bool], funs: Sequence[float] = ()) -> Evidence:
        n = len(valid_flags)
        k = int(sum(1 for v in valid_flags if v))
        lo, hi = wilson_interval(k, n)
        fun_mean = float(np.mean(funs)) if len(funs) else None
        return cls(n=n, valid=k, rate=(k / n if n else 0.0), lower=lo, upper=hi, fun_mean=fun_mean, fun_n=len(funs))


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """A site's persisted routing state."""

    state: RouteState = RouteState.TEACHER
    version: str | None = None
    """The student version the state refers to (shadowed, served, or rolled back)."""
    rejected: tuple[str, ...] = ()
    """Versions rolled back at this site; never shadowed again."""
    since: float | None = field(default=None, compare=False)
    """When the site entered this state (store time); live evidence counts calls from then on."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A transition (or none) with the reason and the evidence behind it."""

    site: str
    before: SiteStatus
    after: SiteStatus
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _fun_drop_significant(current: Sequence[float], baseline: Sequence[float], policy: RoutingPolicy) -> tuple[bool, float]:
    """True when ``current`` fun is lower than ``baseline`` by the margin and a one-sided
    Mann-Whitney U test says the drop is not chance.  Returns (significant, p-value)."""
    if len(current) < policy.rollback_min_samples or len(baseline) < policy.rollback_min_samples:
        return False, 1.0
    from scipy.stats import mannwhitneyu

    if float(np.mean(baseline)) - float(np.mean(current)) < policy.rollback_fun_margin:
        return False, 1.0
    p = float(mannwhitneyu(current, baseline, alternative="less").pvalue)
    return p < policy.alpha, p


def decide(
    site: str,
    status: SiteStatus,
    *,
    promoted: str | None,
    previous: str | None,
    shadow: Evidence,
    live: Evidence,
    live_fun: Sequence[float],
    baseline: Evidence,
    baseline_fun: Sequence[float],
    policy: RoutingPolicy,
    shadow_agreement: Evidence | None = None,
    live_agreement: Evidence | None = None,
) -> Decision:
    """The routing state machine as a pure function (tested without a store or a model).

    ``promoted`` is the registry's current version for the site, ``previous`` the
    one before it (the rollback target).  ``shadow`` is the shadow evidence of
    ``promoted``; ``live`` / ``live_fun`` the first-attempt validity and fun
    scores of ``status.version`` while it serves; ``baseline`` / ``baseline_fun``
    those of its predecessor (the teacher, or the previous version).

    For a site judged by agreement (``[judge]``, :mod:`generator.evaluate.agreement`)
    ``shadow_agreement`` counts the shadow answers that were the teacher's answer
    to the same call, and it, not validity, must clear ``promote_lower_bound``;
    ``live_agreement`` (the served answers spot-checked against the teacher) rolls
    the version back when its Wilson upper bound falls below ``promote_lower_bound``.
    None: the site is judged by validity alone.
    """
    s = status
    if promoted is None:
        if s.state in (RouteState.SHADOW, RouteState.LOCAL):
            return Decision(site, s, SiteStatus(RouteState.TEACHER, None, s.rejected), "no promoted version in the registry")
        return Decision(site, s, s, "no promoted version")

    if s.state in (RouteState.TEACHER, RouteState.ROLLED_BACK):
        if promoted in s.rejected:
            return Decision(site, s, s, f"version {promoted} was rolled back here; waiting for a new one")
        return Decision(site, s, SiteStatus(RouteState.SHADOW, promoted, s.rejected), f"version {promoted} promoted: shadowing it")

    if s.version != promoted:
        # The registry moved on (a newer promotion, or a manual rollback): shadow what it holds now.
        if promoted in s.rejected:
            return Decision(site, s, SiteStatus(RouteState.TEACHER, None, s.rejected), f"registry points at rejected {promoted}")
        return Decision(site, s, SiteStatus(RouteState.SHADOW, promoted, s.rejected), f"registry now holds {promoted}: shadowing it")

    if s.state is RouteState.SHADOW:
        ev = {"shadow": asdict(shadow), "threshold": policy.promote_lower_bound, "min_samples": policy.min_shadow_samples}
        judged, what = shadow, "validity"
        if shadow_agreement is not None:
            ev["shadow_agreement"] = asdict(shadow_agreement)
            judged, what = shadow_agreement, "agreement with the teacher"
        if judged.n < policy.min_shadow_samples:
            return Decision(site, s, s, f"shadowing: {judged.n}/{policy.min_shadow_samples} samples ({what})", ev)
        if judged.lower >= policy.promote_lower_bound:
            return Decision(
                site, s, SiteStatus(RouteState.LOCAL, promoted, s.rejected),
                f"shadow {what} {judged.rate:.1%} (95 % lower bound {judged.lower:.3f} ≥ {policy.promote_lower_bound}) over {judged.n}: serving locally",
                ev,
            )
        return Decision(site, s, s, f"shadow {what} {judged.rate:.1%}, lower bound {judged.lower:.3f} < {policy.promote_lower_bound} over {judged.n}: keep shadowing", ev)

    # LOCAL: watch for a regression against the predecessor.
    ev = {"live": asdict(live), "baseline": asdict(baseline)}
    reasons: list[str] = []
    if live.n >= policy.rollback_min_samples and baseline.n >= policy.rollback_min_samples:
        if live.upper < baseline.rate - policy.rollback_validity_margin:
            reasons.append(
                f"live validity {live.rate:.1%} (upper bound {live.upper:.3f}) below predecessor {baseline.rate:.1%} - {policy.rollback_validity_margin}"
            )
    if live_agreement is not None:
        ev["live_agreement"] = asdict(live_agreement)
        if live_agreement.n >= policy.rollback_min_samples and live_agreement.upper < policy.promote_lower_bound:
            reasons.append(
                f"spot-checked agreement with the teacher {live_agreement.rate:.1%} (upper bound {live_agreement.upper:.3f}) "
                f"over {live_agreement.n} below {policy.promote_lower_bound}"
            )
    significant, p = _fun_drop_significant(live_fun, baseline_fun, policy)
    ev["fun_p_value"] = p
    if significant:
        reasons.append(f"fun {np.mean(live_fun):.3f} below predecessor {np.mean(baseline_fun):.3f} (p={p:.3g})")
    if not reasons:
        return Decision(site, s, s, "serving locally; no regression", ev)
    rejected = (*s.rejected, promoted)
    if previous is not None and previous not in rejected:
        after = SiteStatus(RouteState.LOCAL, previous, rejected)
        target = f"previous version {previous}"
    else:
        after = SiteStatus(RouteState.ROLLED_BACK, None, rejected)
        target = "the teacher"
    return Decision(site, s, after, "regression: " + "; ".join(reasons) + f" -> rolled back to {target}", ev)
