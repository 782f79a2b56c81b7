"""The project's one implementation of each level metric.

Size: over 400 lines on purpose. It is the one implementation of each level
metric for both the training gates and the evaluation; splitting it would
invite copies.

The training gates (``trainer/gates.py``) and the evaluation framework
(``generator/evaluate``) both score generators with these functions, so a
number in a training report and a number in an evaluation report mean the
same thing.  Everything here is pure NumPy and takes plain inputs: levels (a
:class:`~engine.core.level.Level`, a Level JSON object, or ``None`` for an
output that did not parse), specs, validity flags, latencies.

Tile distances compare terrain only (entities are not tiles).  Two levels are
aligned at their top-left corner; the distance between them is the share of
tiles in the union of their footprints that differ, so a size mismatch counts
as difference and the distance is always in ``[0, 1]``.

>>> lo, hi = wilson_interval(9, 10)
>>> round(lo, 3), round(hi, 3)
(0.596, 0.982)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from engine.core.content import ENEMY_KINDS
from engine.core.errors import EngineError
from engine.core.level import SPEC_RANGES, Level, LevelDoc, LevelSpec

__all__ = [
    "Proportion",
    "Summary",
    "Controllability",
    "wilson_interval",
    "validity",
    "count_tolerance",
    "estimate_difficulty",
    "controllability",
    "tile_distance_matrix",
    "diversity",
    "novelty",
    "near_duplicates",
    "summarize",
    "as_level",
    "as_spec",
    "STRUCTURE_KEYS",
    "SIZE_BANDS",
    "size_band",
    "pattern_counts",
    "pattern_jsd",
    "structure_distances",
    "structure_scale",
    "TileMarkov",
    "play_difficulty",
    "difficulty_rank_correlation",
]

#: A level is *novel* when no training level lies within this share of differing tiles.
NOVELTY_THRESHOLD = 0.05
#: Requested vs estimated difficulty may differ by this much and still count as "in band".
DIFFICULTY_TOLERANCE = 2.0

LevelLike = Level | Mapping[str, Any] | None


# ---------------------------------------------------------------- proportions


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` (95 % for ``z=1.96``).

    Unlike the normal approximation it stays inside ``[0, 1]`` and is
    sensible for small ``n`` and rates near 0 or 1, which is exactly where a
    promotion gate sits.  ``n == 0`` gives the uninformative ``(0, 1)``.

    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    >>> lo, hi = wilson_interval(100, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.963, 1.0)
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Proportion:
    """``k`` of ``n`` with its rate and Wilson 95 % interval."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def lower95(self) -> float:
        return wilson_interval(self.k, self.n)[0]

    @property
    def upper95(self) -> float:
        return wilson_interval(self.k, self.n)[1]

    @classmethod
    def of(cls, flags: Iterable[bool]) -> Proportion:
        arr = np.fromiter((bool(f) for f in flags), dtype=bool)
        return cls(int(arr.sum()), int(arr.size))

    def to_dict(self) -> dict[str, float | int]:
        return {"k": self.k, "n": self.n, "rate": self.rate, "lower95": self.lower95, "upper95": self.upper95}


def validity(valid: Iterable[bool | None]) -> Proportion:
    """Share of outputs that passed every validation gate (``None`` = not judged = not valid).

    >>> v = validity([True, True, False, None])
    >>> v.k, v.n, v.rate
    (2, 4, 0.5)
    """
    return Proportion.of(bool(v) for v in valid)


# ------------------------------------------------------------------ coercion


def as_level(x: LevelLike) -> Level | None:
    """A :class:`Level` from a level, a Level JSON object or ``None``; ``None`` if it cannot be built."""
    if x is None or isinstance(x, Level):
        return x
    try:
        return Level.from_doc(msgspec.convert(x, type=LevelDoc))
    except (msgspec.ValidationError, EngineError, TypeError, ValueError):
        return None


def as_spec(x: LevelSpec | Mapping[str, Any]) -> LevelSpec:
    return x if isinstance(x, LevelSpec) else LevelSpec.from_dict(dict(x))


# ----------------------------------------------------------- controllability


def count_tolerance(requested: int) -> int:
    """How far an enemy or item count may stray from the spec: ``max(1, floor(0.25 n))`` (gate V5).

    >>> [count_tolerance(n) for n in (0, 3, 4, 8, 30)]
    [1, 1, 1, 2, 7]
    """
    return max(1, int(requested) // 4)


#: Strongest enemy in the catalogue, so threat per enemy is in (0, 1].
_MAX_THREAT = max(k.hp * k.attack for k in ENEMY_KINDS.values())


def estimate_difficulty(level: Level) -> float:
    """Read a 1..10 difficulty from the level itself (a documented proxy, not ground truth).

    Difficulty grows with how many enemies there are for the floor space and
    how strong they are (``hp * attack`` against the catalogue's strongest)::

        load  = sum(threat_i) / sqrt(floor_tiles / 100)   # enemies per ~100 floor tiles, weighted
        score = 1 + 9 * (1 - exp(-load / 3))

    An empty level is 1; a dense crowd of the strongest kind tends to 10.
    The evaluation framework may calibrate this against bot play later; the
    gates only use it within a tolerance band (``DIFFICULTY_TOLERANCE``).

    >>> from engine.core.level import rows_to_grid
    >>> g = rows_to_grid(["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16])
    >>> estimate_difficulty(Level(name="x", grid=g, spawn=(1, 1), exit=(14, 10), theme="crypt"))
    1.0
    """
    floor = max(1, int(np.count_nonzero(level.grid != 1)))
    threat = 0.0
    for e in level.enemies:
        kind = ENEMY_KINDS.get(e.kind)
        threat += (kind.hp * kind.attack / _MAX_THREAT) if kind else 0.5
    load = threat / math.sqrt(floor / 100.0)
    return round(1.0 + 9.0 * (1.0 - math.exp(-load / 3.0)), 3)


@dataclass(frozen=True, slots=True)
class Controllability:
    """Per spec field share of outputs that honour the request, and all at once (``joint``)."""

    size: Proportion
    enemies: Proportion
    items: Proportion
    difficulty: Proportion
    theme: Proportion
    joint: Proportion

    @property
    def fields(self) -> dict[str, Proportion]:
        return {"size": self.size, "enemies": self.enemies, "items": self.items,
                "difficulty": self.difficulty, "theme": self.theme}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v.to_dict() for k, v in self.fields.items()}
        out["joint"] = self.joint.to_dict()
        return out


def controllability(
    levels: Sequence[LevelLike],
    specs: Sequence[LevelSpec | Mapping[str, Any]],
    *,
    difficulty_of: Callable[[Level], float] = estimate_difficulty,
    difficulty_tolerance: float = DIFFICULTY_TOLERANCE,
) -> Controllability:
    """How well outputs follow their spec, field by field.

    - ``size``: width and height exactly as requested;
    - ``enemies`` / ``items``: count within :func:`count_tolerance` of the request;
    - ``difficulty``: :func:`estimate_difficulty` within ``difficulty_tolerance``;
    - ``theme``: the level names the requested theme;
    - ``joint``: all of the above.

    An output that did not parse (``None``) fails every field.
    """
    if len(levels) != len(specs):
        raise ValueError(f"controllability: {len(levels)} levels but {len(specs)} specs")
    n = len(levels)
    ok = np.zeros((5, n), dtype=bool)
    for i, (raw, raw_spec) in enumerate(zip(levels, specs)):
        level, spec = as_level(raw), as_spec(raw_spec)
        if level is None:
            continue
        ok[0, i] = level.width == spec.width and level.height == spec.height
        ok[1, i] = abs(len(level.enemies) - spec.enemies) <= count_tolerance(spec.enemies)
        ok[2, i] = abs(len(level.items) - spec.items) <= count_tolerance(spec.items)
        ok[3, i] = abs(difficulty_of(level) - spec.difficulty) <= difficulty_tolerance
        ok[4, i] = level.theme == spec.theme
    props = [Proportion(int(row.sum()), n) for row in ok]
    joint = Proportion(int(ok.all(axis=0).sum()) if n else 0, n)
    return Controllability(*props, joint=joint)


# ---------------------------------------------------------- tile distances

_N_TILE_VALUES = 3  # floor, wall, door (engine.core.content.Tile)
_MAX_H, _MAX_W = SPEC_RANGES["height"][1], SPEC_RANGES["width"][1]


def _grids(levels: Sequence[LevelLike]) -> list[NDArray[np.uint8]]:
    out = []
    for x in levels:
        level = as_level(x)
        if level is not None:
            out.append(level.grid)
    return out


def _encode(grids: Sequence[NDArray[np.uint8]], h: int, w: int) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    """One-hot tiles on an ``h x w`` canvas (padding is all-zero, so it never 'matches')."""
    x = np.zeros((len(grids), h, w, _N_TILE_VALUES), dtype=np.float32)
    hs = np.empty(len(grids), dtype=np.int64)
    ws = np.empty(len(grids), dtype=np.int64)
    for i, g in enumerate(grids):
        gh, gw = g.shape
        hs[i], ws[i] = gh, gw
        gg = np.minimum(g, _N_TILE_VALUES - 1)
        x[i, np.arange(gh)[:, None], np.arange(gw)[None, :], gg] = 1.0
    return x.reshape(len(grids), -1), hs, ws


def _pair_distances(a: Sequence[NDArray[np.uint8]], b: Sequence[NDArray[np.uint8]], chunk: int = 512) -> NDArray[np.float32]:
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    h = max(max(g.shape[0] for g in a), max(g.shape[0] for g in b))
    w = max(max(g.shape[1] for g in a), max(g.shape[1] for g in b))
    xb, hb, wb = _encode(b, h, w)
    area_b = hb * wb
    out = np.empty((len(a), len(b)), dtype=np.float32)
    for start in range(0, len(a), chunk):
        xa, ha, wa = _encode(a[start:start + chunk], h, w)
        same = xa @ xb.T  # tiles equal in both (inside the overlap only)
        overlap = np.minimum(ha[:, None], hb[None, :]) * np.minimum(wa[:, None], wb[None, :])
        union = (ha * wa)[:, None] + area_b[None, :] - overlap
        out[start:start + chunk] = (union - same) / union
    return out


def tile_distance_matrix(levels: Sequence[LevelLike], others: Sequence[LevelLike] | None = None) -> NDArray[np.float32]:
    """Normalised tile Hamming distances, ``[i, j]`` between ``levels[i]`` and ``others[j]``
    (``others`` defaults to ``levels``).  Unparsable outputs are dropped first.

    One matrix product on one-hot tiles, so a thousand levels take well under a second.

    >>> from engine.core.level import rows_to_grid
    >>> a = Level(name="a", grid=rows_to_grid(["####", "#..#", "####"]), spawn=(1, 1), exit=(2, 1), theme="cave")
    >>> b = Level(name="b", grid=rows_to_grid(["####", "#.##", "####"]), spawn=(1, 1), exit=(1, 1), theme="cave")
    >>> [[round(float(d), 3) for d in row] for row in tile_distance_matrix([a, b])]
    [[0.0, 0.083], [0.083, 0.0]]
    """
    ga = _grids(levels)
    gb = ga if others is None else _grids(others)
    return _pair_distances(ga, gb)


def diversity(levels: Sequence[LevelLike]) -> float:
    """Mean pairwise normalised tile Hamming distance (0 = all identical, 1 = nothing shared).

    Fewer than two parsed levels give 0.0.
    """
    d = tile_distance_matrix(levels)
    n = d.shape[0]
    if n < 2:
        return 0.0
    return float(d[np.triu_indices(n, k=1)].mean())


def novelty(levels: Sequence[LevelLike], training: Sequence[LevelLike], threshold: float = NOVELTY_THRESHOLD) -> float:
    """Share of ``levels`` farther than ``threshold`` (share of differing tiles) from every training level.

    A student that replays its training data scores 0; an empty training set makes everything novel.
    Unparsable outputs count as not novel (they are not levels at all).
    """
    if not levels:
        return 0.0
    ga, gt = _grids(levels), _grids(training)
    if not ga:
        return 0.0
    if not gt:
        return len(ga) / len(levels)
    nearest = _pair_distances(ga, gt).min(axis=1)
    return float(np.count_nonzero(nearest > threshold)) / len(levels)


def near_duplicates(grids: Sequence[NDArray[np.uint8]], threshold: float = NOVELTY_THRESHOLD) -> NDArray[np.bool_]:
    """Mask of grids to drop because an earlier grid is within ``threshold`` (exact copies included).

    Only grids of the same shape can be that close, so the work is done per
    shape, one distance matrix at a time; the first of each cluster is kept.
    """
    drop = np.zeros(len(grids), dtype=bool)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(grids):
        by_shape.setdefault(tuple(g.shape), []).append(i)
    for idx in by_shape.values():
        if len(idx) < 2:
            continue
        d = _pair_distances([grids[i] for i in idx], [grids[i] for i in idx])
        close = np.triu(d <= threshold, k=1)
        keep = np.ones(len(idx), dtype=bool)
        for j in range(len(idx)):  # greedy: a kept level removes everything close to it
            if keep[j]:
                keep[j + 1:] &= ~close[j, j + 1:]
        drop[np.asarray(idx)[~keep]] = True
    return drop


# ---------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution summary of a per-output quantity (latency in ms, tokens...)."""

    n: int
    mean: float
    p50: float
    p95: float
    max: float
    total: float = field(default=0.0)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(values: Iterable[float]) -> Summary:
    """``n``, mean, median, 95th percentile, max and total; all zero for no values.

    >>> summarize([1, 2, 3, 4]).p50
    2.5
    """
    arr = np.fromiter((float(v) for v in values), dtype=np.float64)
    if arr.size == 0:
        return Summary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return Summary(
        n=int(arr.size),
        mean=float(arr.mean()),
        p50=float(np.percentile(arr, 50)),
        p95=float(np.percentile(arr, 95)),
        max=float(arr.max()),
        total=float(arr.sum()),
    )


# ------------------------------------------------------- likeness to the teacher
#
# A level is creative, so a student is not judged by matching the teacher's level for the same
# spec tile by tile but by whether its levels look like the teacher's *kind* of level:
#
# - the distribution of 3x3 wall/floor patterns (Jensen-Shannon divergence, base 2, so in [0, 1]);
# - layout statistics (rooms, corridor share, dead ends, loops, doors, wall density, spawn->exit
#   path), each compared as a distribution over the levels: Wasserstein-1 divided by the teacher's
#   standard deviation, so 1.0 means "off by about one teacher spread" on any statistic;
# - size bands, so a student that only knows small levels cannot hide behind them.
#
# The teacher-vs-teacher figure (same specs, other seeds) is the noise floor of each number.

#: Layout statistics compared by :func:`structure_distances` (keys of
#: :func:`generator.evaluate.structure.layout_stats`).
STRUCTURE_KEYS: Final = ("rooms", "corridor_share", "dead_ends", "loops", "doors", "wall_density", "path")
#: Least spread a statistic is normalised by: one unit for counts, 0.01 for shares (a teacher whose
#: levels all have one room must not turn a student's second room into an infinite distance).
STRUCTURE_SCALE_FLOOR: Final = {"rooms": 1.0, "corridor_share": 0.01, "dead_ends": 1.0, "loops": 1.0, "doors": 1.0,
                                "wall_density": 0.01, "path": 1.0}
#: Size bands over the spec range: ``(name, largest width, largest height)``; the first that fits wins.
SIZE_BANDS: Final = (("small", 24, 16), ("medium", 40, 30), ("large", 64, 48))
_POW2: Final = (1 << np.arange(9, dtype=np.int64)).reshape(3, 3)


def size_band(spec: LevelSpec | Mapping[str, Any]) -> str:
    """The size band of a spec: ``small`` (≤ 24×16, the quick bootstrap's range), ``medium`` (≤ 40×30), ``large``.

    >>> size_band({"width": 20, "height": 14}), size_band({"width": 25, "height": 12}), size_band({"width": 64, "height": 48})
    ('small', 'medium', 'large')
    """
    w, h = (spec.width, spec.height) if isinstance(spec, LevelSpec) else (int(spec["width"]), int(spec["height"]))
    for name, mw, mh in SIZE_BANDS:
        if w <= mw and h <= mh:
            return name
    return SIZE_BANDS[-1][0]


def pattern_counts(levels: Sequence[LevelLike]) -> NDArray[np.int64]:
    """Counts of the 512 3x3 wall/floor patterns over every window of every level (doors count as floor).

    >>> from engine.core.level import rows_to_grid
    >>> lv = Level(name="a", grid=rows_to_grid(["####", "#..#", "####"]), spawn=(1, 1), exit=(2, 1), theme="cave")
    >>> c = pattern_counts([lv]); int(c.sum()), int(np.count_nonzero(c))
    (2, 2)
    """
    from numpy.lib.stride_tricks import sliding_window_view

    counts = np.zeros(512, dtype=np.int64)
    for g in _grids(levels):
        if g.shape[0] < 3 or g.shape[1] < 3:
            continue
        wall = (g == 1).astype(np.int64)
        codes = np.einsum("ijkl,kl->ij", sliding_window_view(wall, (3, 3)), _POW2)
        counts += np.bincount(codes.ravel(), minlength=512)
    return counts


def pattern_jsd(levels: Sequence[LevelLike], reference: Sequence[LevelLike]) -> float | None:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between the 3x3 wall/floor pattern distributions.

    0 means the same mix of local shapes as ``reference``; ``None`` when either side has no level.

    >>> from engine.core.level import rows_to_grid
    >>> box = Level(name="b", grid=rows_to_grid(["#" * 6] + ["#....#"] * 3 + ["#" * 6]), spawn=(1, 1), exit=(4, 3), theme="cave")
    >>> pattern_jsd([box], [box])
    0.0
    """
    from scipy.spatial.distance import jensenshannon

    a, b = pattern_counts(levels), pattern_counts(reference)
    if a.sum() == 0 or b.sum() == 0:
        return None
    return float(jensenshannon(a / a.sum(), b / b.sum(), base=2) ** 2)


def structure_distances(stats: Sequence[Mapping[str, float] | None],
                        teacher: Sequence[Mapping[str, float] | None],
                        scale: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Per statistic: normalised Wasserstein-1 to the teacher's distribution, and both means.

    ``w1[key] = wasserstein_distance(student, teacher) / scale[key]``; the scale defaults to the
    teacher's standard deviation here, floored at :data:`STRUCTURE_SCALE_FLOOR` (pass the whole
    set's scale when comparing a subset, so every band is measured in the same units);
    ``mean_w1`` averages the keys.  ``None`` entries (outputs that did not parse) are left out.
    """
    from scipy.stats import wasserstein_distance

    s = [x for x in stats if x is not None]
    t = [x for x in teacher if x is not None]
    out: dict[str, Any] = {"w1": {}, "mean": {}, "teacher_mean": {}, "n": len(s)}
    if not s or not t:
        out["mean_w1"] = None
        return out
    for key in STRUCTURE_KEYS:
        a = np.array([x[key] for x in s], dtype=np.float64)
        b = np.array([x[key] for x in t], dtype=np.float64)
        unit = scale[key] if scale is not None else max(float(b.std()), STRUCTURE_SCALE_FLOOR[key])
        out["w1"][key] = float(wasserstein_distance(a, b) / unit)
        out["mean"][key] = float(a.mean())
        out["teacher_mean"][key] = float(b.mean())
    out["mean_w1"] = float(np.mean(list(out["w1"].values())))
    return out


def structure_scale(teacher: Sequence[Mapping[str, float] | None]) -> dict[str, float]:
    """The units :func:`structure_distances` measures in: the teacher's sd per statistic, floored."""
    t = [x for x in teacher if x is not None]
    return {k: max(float(np.std([x[k] for x in t])) if t else 0.0, STRUCTURE_SCALE_FLOOR[k]) for k in STRUCTURE_KEYS}


class TileMarkov:
    """A left+up Markov count model over a level's interior characters: the count baseline.

    ``p(c | left, up)`` is estimated from counts over the training levels' interior cells
    (tiles and the entity glyphs of the compact form, :mod:`generator.local.codec`), smoothed
    towards the add-one unigram with a Dirichlet prior of weight ``prior``.  A transformer that
    does not beat this on held-out NLL has learned no more than two neighbours tell.

    >>> m = TileMarkov.fit([["####", "#..#", "#..#", "####"]] * 3)
    >>> round(m.nll([["####", "#..#", "#..#", "####"]]), 3) < round(m.nll([["####", "#.##", "##.#", "####"]]), 3)
    True
    """

    def __init__(self, alphabet: str, counts: NDArray[np.float64], unigram: NDArray[np.float64], prior: float) -> None:
        self.alphabet = alphabet
        self.index = {c: i for i, c in enumerate(alphabet)}
        self.counts = counts  # [left, up, next]
        self.unigram = unigram
        self.prior = prior
        totals = counts.sum(axis=2, keepdims=True)
        self.logp = np.log((counts + prior * unigram) / (totals + prior))

    @staticmethod
    def default_alphabet() -> str:
        from generator.local.codec import ENEMY_GLYPHS, ITEM_GLYPHS

        return "".join(dict.fromkeys("#.+@>" + "".join(sorted(ENEMY_GLYPHS)) + "".join(sorted(ITEM_GLYPHS))))

    @classmethod
    def fit(cls, grids: Iterable[Sequence[str]], *, alphabet: str | None = None, prior: float = 1.0) -> TileMarkov:
        """Fit on character grids (lists of equal-length row strings, border included)."""
        alphabet = alphabet or cls.default_alphabet()
        index = {c: i for i, c in enumerate(alphabet)}
        k = len(alphabet)
        counts = np.zeros((k, k, k), dtype=np.float64)
        for rows in grids:
            a = _char_index(rows, index)
            if a is None:
                continue
            left, up, here = a[1:-1, :-2], a[:-2, 1:-1], a[1:-1, 1:-1]
            np.add.at(counts, (left.ravel(), up.ravel(), here.ravel()), 1.0)
        uni = counts.sum(axis=(0, 1)) + 1.0
        return cls(alphabet, counts, uni / uni.sum(), prior)

    def cell_logprobs(self, rows: Sequence[str]) -> NDArray[np.float64]:
        """``log p`` of each interior character given its left and upper neighbours, ``[h-2, w-2]``."""
        a = _char_index(rows, self.index)
        if a is None:
            raise ValueError("TileMarkov: a character outside the model's alphabet")
        return self.logp[a[1:-1, :-2], a[:-2, 1:-1], a[1:-1, 1:-1]]

    def nll(self, grids: Iterable[Sequence[str]]) -> float:
        """Mean negative log-likelihood in nats per interior cell over ``grids``."""
        total, n = 0.0, 0
        for rows in grids:
            lp = self.cell_logprobs(rows)
            total -= float(lp.sum())
            n += lp.size
        return total / n if n else float("nan")

    def next_logprobs(self, left: str, up: str) -> NDArray[np.float64]:
        """``log p(next | left, up)`` over :attr:`alphabet` (unknown neighbours count as floor)."""
        return self.logp[self.index.get(left, 1), self.index.get(up, 1)]


def _char_index(rows: Sequence[str], index: Mapping[str, int]) -> NDArray[np.int64] | None:
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    try:
        return np.array([[index[c] for c in r] for r in rows], dtype=np.int64)
    except KeyError:
        return None


# ------------------------------------------------------------ difficulty by play

#: Bots whose play measures a level's difficulty (engine.core.bots).
DIFFICULTY_BOTS: Final = ("explorer", "speedrunner", "cautious")


def play_difficulty(level: LevelLike, *, bots: Sequence[str] = DIFFICULTY_BOTS, seed: int = 0,
                    max_turns: int | None = None) -> dict[str, float] | None:
    """How hard bots found ``level`` (``None`` if it does not parse): means over ``bots``.

    - ``damage``: hit points lost, as a share of the player's maximum;
    - ``died``: share of bots that died;
    - ``turns``: turns played;
    - ``score = damage + died``: the number that is ranked against the requested difficulty
      (a bot that dies has taken its whole health, so dying counts twice).
    """
    from engine.core.bots import play_level
    from engine.core.telemetry import DamageTaken, LevelEnd

    lv = as_level(level)
    if lv is None:
        return None
    damage = died = turns = 0.0
    for i, bot in enumerate(bots):
        out = play_level(lv, bot, seed=seed + i, max_turns=max_turns)
        max_hp = next((e.max_hp for e in out.events if isinstance(e, LevelEnd)), 0) or 1
        damage += sum(e.amount for e in out.events if isinstance(e, DamageTaken)) / max_hp
        died += bool(out.died)
        turns += out.turns
    n = max(1, len(bots))
    return {"damage": damage / n, "died": died / n, "turns": turns / n, "score": (damage + died) / n}


def difficulty_rank_correlation(requested: Sequence[float], measured: Sequence[Mapping[str, float] | None]) -> dict[str, Any]:
    """Spearman rank correlation between requested difficulty and the bots' ``score`` (pairs with a level)."""
    from scipy.stats import spearmanr

    pairs = [(float(r), float(m["score"])) for r, m in zip(requested, measured) if m is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return {"n": len(pairs), "spearman": None, "p": None}
    rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    return {"n": len(pairs), "spearman": float(rho), "p": float(p)}
