"""Rubrics: what the evaluation measures, computed from recorded generations.

Size: over 400 lines on purpose. Every rubric is defined and registered here,
so the report's order and each score's definition are read in one place.

A :class:`Generation` is everything one backend did for one spec and seed:
each attempt (valid or not, which gates failed, latency, tokens, cost), the
final level, the bots' playthroughs and the layout's structural features.
A rubric turns the generations of one backend into a :class:`RubricScore`
(``score``, a 95 % interval ``ci`` and the ``parts`` behind it).

The metrics themselves (Wilson intervals, controllability, tile distances,
diversity, novelty, summaries) come from :mod:`generator.evaluate.metrics`, the same
code the training gates use; this module only decides what to feed them and
adds what is evaluation-only (theme adherence from the level's content and
layout, pass@k, bot play, cost).

Rubrics, in report order (``score`` meaning):

- ``structural``: share valid after retries (higher is better).
- ``constraints``: share honouring every spec field and the theme (higher is better).
- ``fun``: mean fun score of valid levels over the bot policies, 0..1.
- ``diversity``: mean pairwise tile distance of valid levels, 0..1.
- ``cost``: mean milliseconds per delivered generation, retries included (lower is better).

Add a rubric with :func:`rubric` (see ``docs/evaluation.md``).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.content import ENEMY_KINDS, ITEM_KINDS
from engine.core.level import Level, LevelSpec
from generator.evaluate import metrics
from generator.evaluate.structure import StructureFeatures, expected_style, layout_style

__all__ = [
    "Attempt",
    "Play",
    "Generation",
    "RubricScore",
    "RubricContext",
    "RUBRICS",
    "rubric",
    "score_backend",
    "pass_at_k",
    "mean_interval",
    "theme_content_ok",
    "level_scores",
    "level_id",
    "GATES",
    "RATED_RUBRICS",
]

GATES = tuple(f"V{i}" for i in range(8))


# ----------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one backend: did it pass, and what it cost."""

    valid: bool
    failures: tuple[str, ...] = ()  #: failure codes such as ``"V6.unreachable_enemy"``
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None  #: the backend raised instead of answering

    @property
    def gates(self) -> frozenset[str]:
        return frozenset(code.split(".", 1)[0] for code in self.failures)


@dataclass(frozen=True, slots=True)
class Play:
    """One bot's playthrough of a level."""

    bot: str
    completed: bool
    died: bool
    turns: int
    fun: float
    features: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Generation:
    """Everything one backend did for one spec and seed."""

    backend: str
    spec_index: int
    sample: int
    spec: LevelSpec
    seed: int
    attempts: list[Attempt]
    level: Level | None = None  #: the valid level, else the last one that parsed
    plays: list[Play] = field(default_factory=list)
    structure: StructureFeatures | None = None
    model_version: str | None = None

    @property
    def valid(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].valid

    @property
    def raw_valid(self) -> bool:
        return bool(self.attempts) and self.attempts[0].valid

    @property
    def first_valid_attempt(self) -> int | None:
        """1-based attempt that first passed, or None."""
        return next((i + 1 for i, a in enumerate(self.attempts) if a.valid), None)

    @property
    def latency_ms(self) -> float:
        return float(sum(a.latency_ms for a in self.attempts))

    @property
    def level_id(self) -> str | None:
        return level_id(self.level) if self.level is not None else None


def level_id(level: Level) -> str:
    """Stable id of a level's content, so ratings of the same level join across runs."""
    return hashlib.sha1(level.to_json()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RubricScore:
    """A rubric's headline number, its 95 % interval and what it is made of."""

    score: float
    ci: tuple[float, float]
    parts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"score": _clean(self.score), "ci": [_clean(self.ci[0]), _clean(self.ci[1])], "parts": _clean(self.parts)}


@dataclass(frozen=True, slots=True)
class RubricContext:
    """What rubrics may need beyond one backend's generations."""

    training_levels: Sequence[Level] = ()
    seed: int = 0


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, NumPy scalars become Python numbers."""
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, metrics.Proportion):
        return x.to_dict()
    return x


# ---------------------------------------------------------------- helpers


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` independent samples with ``c`` valid: ``1 - C(n-c, k) / C(n, k)``.

    >>> pass_at_k(5, 0, 1), pass_at_k(5, 5, 3), round(pass_at_k(4, 1, 2), 3)
    (0.0, 1.0, 0.5)
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_interval(values: Iterable[float], z: float = 1.96) -> tuple[float, tuple[float, float]]:
    """Mean and normal-approximation 95 % interval (NaNs dropped; fewer than two values: the mean twice).

    >>> mean_interval([1.0, 1.0, 1.0])
    (1.0, (1.0, 1.0))
    """
    arr = np.fromiter((float(v) for v in values), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, (math.nan, math.nan)
    m = float(arr.mean())
    if arr.size < 2:
        return m, (m, m)
    half = z * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return m, (m - half, m + half)


def _prop(flags: Iterable[bool]) -> dict[str, float | int]:
    return metrics.Proportion.of(flags).to_dict()


def theme_content_ok(level: Level, theme: str) -> bool:
    """Every enemy and item kind on the level belongs to ``theme`` in the content catalogue.

    >>> from engine.core.level import Placed, rows_to_grid
    >>> g = rows_to_grid(["####", "#..#", "####"])
    >>> lv = Level(name="a", grid=g, spawn=(1, 1), exit=(2, 1), enemies=[Placed("knight", 2, 1)], theme="crypt")
    >>> theme_content_ok(lv, "fortress"), theme_content_ok(lv, "crypt")
    (True, False)
    """
    enemies_ok = all(e.kind in ENEMY_KINDS and theme in ENEMY_KINDS[e.kind].themes for e in level.enemies)
    items_ok = all(i.kind in ITEM_KINDS and theme in ITEM_KINDS[i.kind].themes for i in level.items)
    return enemies_ok and items_ok


def _fits_kind_share(level: Level, theme: str) -> float:
    things = [(e.kind, ENEMY_KINDS) for e in level.enemies] + [(i.kind, ITEM_KINDS) for i in level.items]
    if not things:
        return 1.0
    return sum(1 for kind, table in things if kind in table and theme in table[kind].themes) / len(things)


def _layout_ok(g: Generation) -> bool:
    if g.level is None or g.structure is None:
        return False
    want = expected_style(g.spec.theme)
    return want is None or layout_style(g.structure) == want


# ---------------------------------------------------------------- rubrics

Rubric = Callable[[Sequence[Generation], RubricContext], RubricScore]
#: Rubric name -> function, in report order.  Extend with :func:`rubric`.
RUBRICS: dict[str, Rubric] = {}


def rubric(name: str) -> Callable[[Rubric], Rubric]:
    """Register a rubric under ``name`` (the key in the JSON output and the report's column)."""

    def register(fn: Rubric) -> Rubric:
        RUBRICS[name] = fn
        return fn

    return register


@rubric("structural")
def structural(gens: Sequence[Generation], ctx: RubricContext) -> RubricScore:
    """Validity after retries (the headline), raw validity, pass@k and which gates fail."""
    after = metrics.validity(g.valid for g in gens)
    max_attempts = max((len(g.attempts) for g in gens), default=1)
    within = {
        str(k): _prop(g.first_valid_attempt is not None and g.first_valid_attempt <= k for g in gens)
        for k in range(1, max(max_attempts, 1) + 1)
    }
    first_gates: Counter[str] = Counter()
    all_gates: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for g in gens:
        if g.attempts:
            first_gates.update(g.attempts[0].gates)
        for a in g.attempts:
            all_gates.update(a.gates)
            codes.update(a.failures)
    # Unbiased pass@k over independent first attempts of the same spec, when several seeds were drawn.
    by_spec: dict[int, list[bool]] = {}
    for g in gens:
        by_spec.setdefault(g.spec_index, []).append(g.raw_valid)
    samples = min((len(v) for v in by_spec.values()), default=0)
    pass_samples = {
        str(k): float(np.mean([pass_at_k(len(v), sum(v), k) for v in by_spec.values()]))
        for k in range(1, samples + 1)
    } if samples >= 2 else {}
    lo, hi = after.lower95, after.upper95
    return RubricScore(
        score=after.rate,
        ci=(lo, hi),
        parts={
            "after_retries": after.to_dict(),
            "raw": metrics.validity(g.raw_valid for g in gens).to_dict(),
            "pass_within_k_attempts": within,
            "pass_at_k_samples": pass_samples,
            "first_attempt_gate_failures": {gate: first_gates.get(gate, 0) for gate in GATES},
            "all_attempts_gate_failures": {gate: all_gates.get(gate, 0) for gate in GATES},
            "failure_codes": dict(codes.most_common()),
            "mean_attempts": float(np.mean([len(g.attempts) for g in gens])) if gens else 0.0,
            "backend_errors": sum(1 for g in gens for a in g.attempts if a.error),
        },
    )


@rubric("constraints")
def constraints(gens: Sequence[Generation], ctx: RubricContext) -> RubricScore:
    """Spec fields honoured one by one (:func:`generator.evaluate.metrics.controllability`) and theme from content and layout."""
    levels = [g.level for g in gens]
    specs = [g.spec for g in gens]
    ctrl = metrics.controllability(levels, specs)
    kinds_ok = [g.level is not None and theme_content_ok(g.level, g.spec.theme) for g in gens]
    layout_ok = [_layout_ok(g) for g in gens]
    per_field = np.array(
        [[_field_ok(g, name) for g in gens] for name in ("size", "enemies", "items", "difficulty", "theme")],
        dtype=bool,
    ).reshape(5, len(gens))
    joint_all = per_field.all(axis=0) & np.array(kinds_ok, dtype=bool) & np.array(layout_ok, dtype=bool)
    joint = metrics.Proportion.of(joint_all)
    parsed = [g for g in gens if g.level is not None]
    parts: dict[str, Any] = {name: p.to_dict() for name, p in ctrl.fields.items()}
    parts["spec_joint"] = ctrl.joint.to_dict()
    parts["theme_kinds"] = _prop(kinds_ok)
    parts["theme_layout"] = _prop(layout_ok)
    parts["joint"] = joint.to_dict()
    parts["kind_fit_share"] = float(np.mean([_fits_kind_share(g.level, g.spec.theme) for g in parsed])) if parsed else math.nan
    parts["enemy_count_mae"] = float(np.mean([abs(len(g.level.enemies) - g.spec.enemies) for g in parsed])) if parsed else math.nan
    parts["item_count_mae"] = float(np.mean([abs(len(g.level.items) - g.spec.items) for g in parsed])) if parsed else math.nan
    parts["difficulty_mae"] = (
        float(np.mean([abs(metrics.estimate_difficulty(g.level) - g.spec.difficulty) for g in parsed])) if parsed else math.nan
    )
    parts["difficulty_played"] = _difficulty_played(gens)
    return RubricScore(score=joint.rate, ci=(joint.lower95, joint.upper95), parts=parts)


def _difficulty_played(gens: Sequence[Generation]) -> dict[str, Any]:
    """Does a harder spec play harder?  Spearman between requested difficulty and the bots' failure share.

    ``rho`` near +1: higher requested difficulty, more bots die or fail to
    finish; near 0: the difficulty field has no effect on play.  ``None``
    with fewer than five played levels or no variation.
    """
    from scipy.stats import spearmanr

    played = [g for g in gens if g.valid and g.plays]
    out: dict[str, Any] = {"rho": None, "p": None, "n": len(played)}
    if len(played) < 5:
        return out
    requested = np.array([g.spec.difficulty for g in played], dtype=float)
    failed = np.array([1.0 - float(np.mean([p.completed for p in g.plays])) for g in played])
    if np.ptp(requested) > 0 and np.ptp(failed) > 0:
        res = spearmanr(requested, failed)
        out["rho"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def _field_ok(g: Generation, name: str) -> bool:
    """The per-generation version of one controllability field (kept consistent with metrics)."""
    if g.level is None:
        return False
    return getattr(metrics.controllability([g.level], [g.spec]), name).k == 1


@rubric("fun")
def fun(gens: Sequence[Generation], ctx: RubricContext) -> RubricScore:
    """Bot play on valid levels: the fun score, completion, deaths, plus structural proxies."""
    played = [g for g in gens if g.valid and g.plays]
    per_level = [float(np.mean([p.fun for p in g.plays])) for g in played]
    score, ci = mean_interval(per_level)
    ci = (max(0.0, ci[0]), min(1.0, ci[1])) if played else ci  # fun scores live in [0, 1]
    plays = [p for g in played for p in g.plays]
    bots = sorted({p.bot for p in plays})
    feature_names = sorted({k for p in plays for k in p.features})
    parts: dict[str, Any] = {
        "levels_played": len(played),
        "viable": _prop(g.valid and any(p.completed for p in g.plays) for g in gens),
        "completion": _prop(p.completed for p in plays),
        "deaths": _prop(p.died for p in plays),
        "completion_by_bot": {b: _prop(p.completed for p in plays if p.bot == b) for b in bots},
        "fun_by_bot": {b: float(np.mean([p.fun for p in plays if p.bot == b])) for b in bots},
        "mean_turns": float(np.mean([p.turns for p in plays])) if plays else math.nan,
        "fun_features": {
            k: float(np.nanmean([p.features.get(k, math.nan) for p in plays])) for k in feature_names
        },
    }
    valid_structs = [g.structure for g in gens if g.valid and g.structure is not None]
    if valid_structs:
        table = {k: [float(s.to_dict()[k]) for s in valid_structs] for k in valid_structs[0].to_dict()}
        parts["structure"] = {
            k: (float(np.nanmean(v)) if np.isfinite(v).any() else math.nan) for k, v in table.items()
        }
    else:
        parts["structure"] = {}
    return RubricScore(score=score, ci=ci, parts=parts)


@rubric("diversity")
def diversity(gens: Sequence[Generation], ctx: RubricContext) -> RubricScore:
    """How different valid levels are from each other (and from the training data)."""
    levels = [g.level for g in gens if g.valid and g.level is not None]
    d = metrics.tile_distance_matrix(levels)
    score = metrics.diversity(levels)
    ci = _bootstrap_pairwise_mean(d, ctx.seed)
    within = []
    by_spec: dict[int, list[Level]] = {}
    for g in gens:
        if g.valid and g.level is not None:
            by_spec.setdefault(g.spec_index, []).append(g.level)
    for group in by_spec.values():
        if len(group) >= 2:
            within.append(metrics.diversity(group))
    dups = metrics.near_duplicates([lv.grid for lv in levels]) if levels else np.zeros(0, dtype=bool)
    parts: dict[str, Any] = {
        "levels": len(levels),
        "within_spec": float(np.mean(within)) if within else math.nan,
        "near_duplicate_share": float(dups.mean()) if dups.size else 0.0,
        "training_levels": len(ctx.training_levels),
        "novelty": metrics.novelty(levels, ctx.training_levels) if ctx.training_levels else math.nan,
    }
    return RubricScore(score=score, ci=ci, parts=parts)


def _bootstrap_pairwise_mean(d: np.ndarray, seed: int, rounds: int = 200) -> tuple[float, float]:
    """Percentile bootstrap over levels for the mean pairwise distance (same-index pairs excluded)."""
    n = d.shape[0]
    if n < 3:
        v = float(d[np.triu_indices(n, k=1)].mean()) if n == 2 else math.nan
        return v, v
    rng = np.random.default_rng(seed)
    means = np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, n, size=n)
        sub = d[np.ix_(idx, idx)]
        distinct = idx[:, None] != idx[None, :]
        means[r] = sub[distinct].mean() if distinct.any() else 0.0
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@rubric("cost")
def cost(gens: Sequence[Generation], ctx: RubricContext) -> RubricScore:
    """Latency, tokens and money per generation, every attempt included (lower is better)."""
    latency = [g.latency_ms for g in gens]
    score, ci = mean_interval(latency)
    ci = (max(0.0, ci[0]), ci[1]) if gens else ci  # time is never negative
    attempts = [a for g in gens for a in g.attempts]
    parts = {
        "latency_ms": metrics.summarize(latency).to_dict(),
        "latency_ms_per_attempt": metrics.summarize(a.latency_ms for a in attempts).to_dict(),
        "prompt_tokens": metrics.summarize(sum(a.prompt_tokens for a in g.attempts) for g in gens).to_dict(),
        "completion_tokens": metrics.summarize(sum(a.completion_tokens for a in g.attempts) for g in gens).to_dict(),
        "cost_usd": metrics.summarize(sum(a.cost_usd for a in g.attempts) for g in gens).to_dict(),
        "attempts": metrics.summarize(len(g.attempts) for g in gens).to_dict(),
    }
    return RubricScore(score=score, ci=ci, parts=parts)


def score_backend(gens: Sequence[Generation], ctx: RubricContext | None = None,
                  names: Sequence[str] | None = None) -> dict[str, RubricScore]:
    """Every registered rubric (or just ``names``) for one backend's generations."""
    ctx = ctx or RubricContext()
    return {name: RUBRICS[name](gens, ctx) for name in (names or RUBRICS)}


# ------------------------------------------------------- per-level scores

#: The three rubrics people rate (1-5) and the judge scores; keys of :func:`level_scores`.
RATED_RUBRICS = ("fun", "structure", "constraints")


def level_scores(g: Generation) -> dict[str, float]:
    """Automatic per-level scores in [0, 1] for the three rated rubrics (to compare with people).

    - ``structure``: share of the eight gates the first attempt passed, halved
      again for every retry needed (a clean first try scores 1);
    - ``constraints``: share of the seven spec and theme checks honoured;
    - ``fun``: mean bot fun score (NaN when not played).
    """
    first = g.attempts[0] if g.attempts else Attempt(valid=False, failures=("V0.none",))
    gates_ok = 1.0 - len(first.gates) / len(GATES)
    if g.valid:
        gates_ok = 1.0 if g.raw_valid else 0.5 ** ((g.first_valid_attempt or 1) - 1) * max(gates_ok, 0.5)
    checks = [_field_ok(g, n) for n in ("size", "enemies", "items", "difficulty", "theme")]
    checks += [g.level is not None and theme_content_ok(g.level, g.spec.theme), _layout_ok(g)]
    return {
        "structure": float(gates_ok),
        "constraints": float(np.mean(checks)),
        "fun": float(np.mean([p.fun for p in g.plays])) if g.plays else math.nan,
    }
