"""How much a level generator's output looks like the teacher's, by size band, beside controls.

:func:`likeness_table` takes each generator's levels for the same held-out
specs (the teacher's own levels for those specs are the reference) and
reports, overall and per :func:`~generator.evaluate.metrics.size_band`:

- ``pattern_jsd``: 3x3 wall/floor pattern Jensen-Shannon divergence to the
  teacher (:func:`generator.evaluate.metrics.pattern_jsd`);
- ``structure_w1``: mean normalised Wasserstein-1 over the layout statistics
  (:func:`generator.evaluate.metrics.structure_distances`), with each statistic's
  distance and mean beside the teacher's mean;
- ``nll``: the teacher's held-out levels' negative log-likelihood (nats per
  interior tile) where the generator is a model that can score them;
- ``valid``: the share of first candidates that pass every gate.

The ``noise`` entry is the teacher against itself (same specs, other seeds):
no generator can be expected below it.  Numbers and their meaning are
explained in ``docs/evaluation.md`` ("Likeness to the teacher").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from generator.evaluate.structure import layout_stats
from generator.evaluate.metrics import (
    SIZE_BANDS,
    LevelLike,
    pattern_jsd,
    size_band,
    structure_distances,
    structure_scale,
)

__all__ = ["likeness_table", "likeness_markdown", "placement_rows", "LIKENESS_METRICS"]

#: Metrics a student must beat its controls on (lower is better for each).
LIKENESS_METRICS = ("pattern_jsd", "structure_w1", "nll")


#: Row bins for where things stand (tenths of the interior's height).
ROW_BINS = 10


def _row_bin(y: int, height: int) -> int:
    return min(ROW_BINS - 1, max(0, (y - 1) * ROW_BINS // max(1, height - 2)))


def placement_rows(level: LevelLike) -> list[int]:
    """Row tenth (0 = top of the interior, 9 = bottom) of every thing on a level: spawn, exit, enemies, items."""
    from generator.evaluate.metrics import as_level

    lv = as_level(level)
    if lv is None:
        return []
    points = [lv.spawn, lv.exit, *((e.x, e.y) for e in lv.enemies), *((i.x, i.y) for i in lv.items)]
    return [_row_bin(y, lv.height) for _, y in points]


def _placement_entry(idx: Sequence[int], specs: Sequence[Mapping[str, Any]], levels: Sequence[LevelLike],
                     placed: Sequence[Sequence[Any]] | None, teacher_hist: Any) -> dict[str, Any]:
    """Where the model put things (the grammar's record, before the spawn/exit post-step) against the teacher."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    from generator.evaluate.metrics import as_level

    from engine.core.level import Level
    from generator.evaluate.structure import structure_features

    hist = np.zeros(ROW_BINS)
    forced = total = moved = judged = 0
    raw_paths: list[int] = []
    for i in idx:
        things = list((placed or [])[i]) if placed is not None else []
        h = int(specs[i]["height"])
        for glyph, _x, y, must in things:
            hist[_row_bin(int(y), h)] += 1
            forced += bool(must)
            total += 1
        lv = as_level(levels[i])
        raw = {g: (int(x), int(y)) for g, x, y, _ in things if g in "@>"}
        if lv is not None and len(raw) == 2:
            judged += 1
            moved += raw["@"] != tuple(lv.spawn) or raw[">"] != tuple(lv.exit)
            where = Level(name=lv.name, grid=lv.grid, spawn=raw["@"], exit=raw[">"], theme=lv.theme)
            raw_paths.append(structure_features(where).critical_path)
    out: dict[str, Any] = {
        "things": total,
        "must_place_share": forced / total if total else None,
        "last_tenth_share": float(hist[-1] / total) if total else None,
        "row_jsd": float(jensenshannon(hist / hist.sum(), teacher_hist / teacher_hist.sum(), base=2) ** 2)
        if total and teacher_hist.sum() else None,
        "post_step_moved_share": moved / judged if judged else None,
        #: spawn->exit walk between where the model wrote them (before the post-step moved them)
        "model_path": float(np.mean(raw_paths)) if raw_paths else None,
    }
    return out


def _entry(levels: Sequence[LevelLike], stats: Sequence[Any], teacher: Sequence[LevelLike],
           teacher_stats: Sequence[Any], idx: Sequence[int], valid: Sequence[bool] | None,
           nll_parts: Sequence[tuple[float, int]] | None, scale: Mapping[str, float]) -> dict[str, Any]:
    lv = [levels[i] for i in idx]
    sd = structure_distances([stats[i] for i in idx], [teacher_stats[i] for i in idx], scale)
    out: dict[str, Any] = {
        "n": len(idx),
        "pattern_jsd": pattern_jsd(lv, [teacher[i] for i in idx]),
        "structure_w1": sd["mean_w1"],
        "w1": sd["w1"],
        "mean": sd["mean"],
    }
    if valid is not None:
        out["valid"] = sum(bool(valid[i]) for i in idx) / len(idx) if idx else None
    if nll_parts is not None:
        cells = sum(nll_parts[i][1] for i in idx)
        out["nll"] = sum(nll_parts[i][0] for i in idx) / cells if cells else None
    return out


def likeness_table(
    specs: Sequence[Mapping[str, Any]],
    teacher: Sequence[LevelLike],
    generators: Mapping[str, Sequence[LevelLike]],
    *,
    valid: Mapping[str, Sequence[bool]] | None = None,
    nll_parts: Mapping[str, Sequence[tuple[float, int]]] | None = None,
    noise: Sequence[LevelLike] | None = None,
    placements: Mapping[str, Sequence[Sequence[Any]]] | None = None,
) -> dict[str, Any]:
    """Likeness of each generator's levels (index-aligned with ``specs``) to ``teacher``'s.

    Returns ``{"n", "bands": {band: n}, "teacher": {"mean", "bands"}, "noise": entry | None,
    "generators": {name: entry with "bands": {band: entry}}}``.
    """
    n = len(specs)
    for name, levels in [("teacher", teacher), *generators.items()]:
        if len(levels) != n:
            raise ValueError(f"likeness_table: {name} has {len(levels)} levels for {n} specs")
    bands: dict[str, list[int]] = {b: [] for b, *_ in SIZE_BANDS}
    for i, spec in enumerate(specs):
        bands[size_band(spec)].append(i)
    bands = {b: idx for b, idx in bands.items() if idx}
    everything = list(range(n))
    t_stats = [layout_stats(x) for x in teacher]
    scale = structure_scale(t_stats)  # one unit per statistic for every band: the whole set's teacher spread

    import numpy as np

    def hist_of(idx: Sequence[int]) -> Any:
        return np.bincount([r for i in idx for r in placement_rows(teacher[i])], minlength=ROW_BINS).astype(float)

    t_hist = {"all": hist_of(everything), **{b: hist_of(idx) for b, idx in bands.items()}}

    def entry(levels: Sequence[LevelLike], v: Sequence[bool] | None, parts: Any,
              placed: Sequence[Sequence[Any]] | None = None) -> dict[str, Any]:
        stats = [layout_stats(x) for x in levels]
        out = _entry(levels, stats, teacher, t_stats, everything, v, parts, scale)
        out["bands"] = {b: _entry(levels, stats, teacher, t_stats, idx, v, parts, scale) for b, idx in bands.items()}
        if placed is not None:
            out["placement"] = _placement_entry(everything, specs, levels, placed, t_hist["all"])
            for b, idx in bands.items():
                out["bands"][b]["placement"] = _placement_entry(idx, specs, levels, placed, t_hist[b])
        return out

    teacher_means = structure_distances(t_stats, t_stats)["teacher_mean"]
    report: dict[str, Any] = {
        "n": n,
        "bands": {b: len(idx) for b, idx in bands.items()},
        "teacher": {"mean": teacher_means,
                    "last_tenth_share": float(t_hist["all"][-1] / t_hist["all"].sum()) if t_hist["all"].sum() else None,
                    "bands": {b: structure_distances([t_stats[i] for i in idx], [t_stats[i] for i in idx])["teacher_mean"]
                              for b, idx in bands.items()}},
        "noise": entry(noise, None, None) if noise is not None else None,
        "generators": {name: entry(levels, (valid or {}).get(name), (nll_parts or {}).get(name),
                                   (placements or {}).get(name))
                       for name, levels in generators.items()},
    }
    return report


def _f(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def likeness_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables: overall, then one row per generator and band."""
    gens = dict(report["generators"])
    cols = ["valid", "pattern_jsd", "structure_w1", "nll", "rooms", "path", "corridor_share", "doors"]
    head = "| | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1) + "\n"

    def row(name: str, e: Mapping[str, Any] | None, means: Mapping[str, float] | None = None) -> str:
        if e is None:
            return ""
        m = means if means is not None else e.get("mean", {})
        vals = [e.get("valid"), e.get("pattern_jsd"), e.get("structure_w1"), e.get("nll"),
                m.get("rooms"), m.get("path"), m.get("corridor_share"), m.get("doors")]
        return f"| {name} | " + " | ".join(_f(v, 1 if k in ("rooms", "path", "doors") else 3)
                                         for k, v in zip(cols, vals)) + " |\n"

    out = [f"All {report['n']} specs (bands: " + ", ".join(f"{b} {k}" for b, k in report["bands"].items()) + ")\n\n",
           head, row("teacher", {}, report["teacher"]["mean"])]
    if report.get("noise"):
        out.append(row("teacher, other seeds (noise)", report["noise"]))
    out += [row(name, e) for name, e in gens.items()]
    if any(e.get("placement") for e in gens.values()):
        out += ["\nWhere things were written (the grammar's record, before the spawn/exit post-step); "
                f"teacher's share in the last tenth of rows: {_f(report['teacher'].get('last_tenth_share'))}\n\n",
                "| | must-place share | last tenth of rows | row JSD to teacher | post-step moved spawn/exit "
                "| path between the model's spawn and exit |\n|---|---|---|---|---|---|\n"]
        for name, e in gens.items():
            p = e.get("placement")
            if p:
                out.append(f"| {name} | {_f(p['must_place_share'])} | {_f(p['last_tenth_share'])} | "
                           f"{_f(p['row_jsd'])} | {_f(p['post_step_moved_share'])} | {_f(p.get('model_path'), 1)} |\n")
    for band in report["bands"]:
        out += [f"\nBand {band} ({report['bands'][band]} specs)\n\n", head,
                row("teacher", {}, report["teacher"]["bands"][band])]
        if report.get("noise"):
            out.append(row("teacher, other seeds (noise)", report["noise"]["bands"].get(band)))
        out += [row(name, e["bands"].get(band)) for name, e in gens.items()]
    return "".join(out)
