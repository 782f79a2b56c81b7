"""The evaluation report: one HTML page, level pictures and matplotlib plots in a folder.

Size: over 400 lines on purpose. The page, its plots and its pictures are
written in one pass over one evaluation; about half the lines are the HTML and
plot layout.

``write_report(evaluation, out_dir)`` writes::

    out_dir/index.html          summary table (backend x rubric, 95 % intervals), details, plots, pictures
    out_dir/evaluation.json     the same numbers as ``--json``
    out_dir/levels.jsonl        one row per generation (what the rating page shows)
    out_dir/plots/*.png         failures per gate, requested vs actual counts, diversity, fun, structure, latency/cost
    out_dir/levels/*.png        level pictures drawn with the game's tiles

The page is plain HTML with relative links, so the folder can be zipped,
mailed or served as is.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from generator.evaluate.rubrics import GATES, Generation
from generator.evaluate.runner import Evaluation, generation_rows

__all__ = ["write_report", "report_rows", "PLOTS", "RUBRIC_HELP"]

log = logging.getLogger(__name__)

#: One line per rubric for the summary table: what the score is and which way is better.
RUBRIC_HELP: dict[str, str] = {
    "structural": "valid after retries (higher is better)",
    "constraints": "every spec field + theme honoured (higher is better)",
    "fun": "mean bot fun score 0-1 of valid levels (higher is better)",
    "diversity": "mean pairwise tile distance 0-1 (higher is more varied)",
    "cost": "ms per generation incl. retries (lower is better)",
    "judge": "LLM judge, mean of three rubrics 1-5 (higher is better)",
}
LOWER_IS_BETTER = {"cost"}
PLOTS = ("gate_failures", "counts", "diversity", "fun", "structure", "latency_cost")
_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


# ------------------------------------------------------------------ plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path.name


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _plot_gate_failures(ev: Evaluation, path: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    names = list(ev.generations)
    width = 0.8 / max(1, len(names))
    x = np.arange(len(GATES))
    for j, name in enumerate(names):
        gens = ev.generations[name]
        first = ev.scores[name]["structural"].parts["first_attempt_gate_failures"] if "structural" in ev.scores[name] else {}
        share = [first.get(g, 0) / max(1, len(gens)) for g in GATES]
        ax.bar(x + j * width - 0.4 + width / 2, share, width, label=_short(name), color=_COLOURS[j % len(_COLOURS)])
    ax.set_xticks(x, GATES)
    ax.set_ylabel("share of first attempts failing")
    ax.set_title("Failures per validation gate (first attempt)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_counts(ev: Evaluation, path: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    rng = np.random.default_rng(0)
    for ax, field, top in ((axes[0], "enemies", 30), (axes[1], "items", 20)):
        hi = 1
        for j, (name, gens) in enumerate(ev.generations.items()):
            pts = [(getattr(g.spec, field), len(getattr(g.level, field))) for g in gens if g.level is not None]
            if not pts:
                continue
            req, act = np.array(pts, dtype=float).T
            hi = max(hi, req.max(), act.max())
            ax.scatter(req + rng.uniform(-0.2, 0.2, req.size), act + rng.uniform(-0.2, 0.2, act.size),
                       s=14, alpha=0.7, label=_short(name), color=_COLOURS[j % len(_COLOURS)])
        line = np.linspace(0, hi + 1, 50)
        tol = np.maximum(1, np.floor(0.25 * line))
        ax.fill_between(line, line - tol, line + tol, color="#cccccc", alpha=0.5, label="allowed: ±max(1, ⌊n/4⌋)")
        ax.plot(line, line, color="#666666", lw=1)
        ax.set_xlim(-0.5, hi + 1)
        ax.set_ylim(-0.5, hi + 1)
        ax.set_xlabel(f"{field} requested")
        ax.set_ylabel(f"{field} on the level")
        ax.set_title(f"Requested vs actual {field}")
        ax.legend(fontsize=7)
    return _save(fig, path)


def _plot_diversity(ev: Evaluation, path: Path) -> str:
    from generator.evaluate.metrics import tile_distance_matrix

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(ev.generations)
    for j, name in enumerate(names):
        s = ev.scores[name].get("diversity")
        if s is None:
            continue
        colour = _COLOURS[j % len(_COLOURS)]
        lo, hi = (v if v is not None and math.isfinite(v) else s.score for v in s.ci)
        axes[0].bar(j, s.score, color=colour, yerr=[[max(0, s.score - lo)], [max(0, hi - s.score)]], capsize=4)
        within = s.parts.get("within_spec")
        if within is not None and math.isfinite(within):
            axes[0].plot(j, within, "k_", markersize=22, mew=2)
        levels = [g.level for g in ev.generations[name] if g.valid and g.level is not None]
        d = tile_distance_matrix(levels)
        if d.shape[0] >= 2:
            axes[1].hist(d[np.triu_indices(d.shape[0], k=1)], bins=20, range=(0, 1), histtype="step",
                         lw=2, label=_short(name), color=colour)
    axes[0].set_xticks(range(len(names)), [_short(n, 16) for n in names])
    axes[0].set_ylim(0, 1)
    axes[0].set_title("Diversity (bar, 95% CI); within-spec (black tick)")
    axes[1].set_title("Pairwise tile distances")
    axes[1].set_xlabel("share of tiles that differ")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def _plot_fun(ev: Evaluation, path: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(ev.generations)
    data = [[float(np.mean([p.fun for p in g.plays])) for g in ev.generations[n] if g.valid and g.plays] for n in names]
    if any(data):
        axes[0].boxplot([d if d else [math.nan] for d in data], tick_labels=[_short(n, 16) for n in names])
        for j, d in enumerate(data):
            axes[0].scatter(np.full(len(d), j + 1) + np.random.default_rng(j).uniform(-0.15, 0.15, len(d)), d,
                            s=10, alpha=0.5, color=_COLOURS[j % len(_COLOURS)])
    else:
        axes[0].text(0.5, 0.5, "levels were not played", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("Fun score per level (mean over bots)")
    bots = sorted({p.bot for n in names for g in ev.generations[n] for p in g.plays})
    width = 0.8 / max(1, len(names))
    for j, n in enumerate(names):
        rates = []
        for b in bots:
            plays = [p for g in ev.generations[n] for p in g.plays if p.bot == b]
            rates.append(np.mean([p.completed for p in plays]) if plays else 0.0)
        axes[1].bar(np.arange(len(bots)) + j * width - 0.4 + width / 2, rates, width, label=_short(n),
                    color=_COLOURS[j % len(_COLOURS)])
    axes[1].set_xticks(range(len(bots)), bots)
    axes[1].set_ylim(0, 1)
    axes[1].set_title("Completion rate per bot")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


_STRUCTURE_SHOWN = ("path_ratio", "dead_ends", "loops", "branches", "nearest_enemy", "wall_density")


def _plot_structure(ev: Evaluation, path: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.2))
    names = list(ev.generations)
    for ax, key in zip(axes.flat, _STRUCTURE_SHOWN):
        data = []
        for n in names:
            vals = [float(getattr(g.structure, key)) for g in ev.generations[n] if g.valid and g.structure is not None]
            vals = [v for v in vals if math.isfinite(v)]
            data.append(vals if vals else [math.nan])
        ax.boxplot(data, tick_labels=[_short(n, 16) for n in names])
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle("Structural fun proxies of valid levels")
    return _save(fig, path)


def _plot_latency_cost(ev: Evaluation, path: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(ev.generations)
    lat = [[max(g.latency_ms, 1e-3) for g in ev.generations[n]] or [math.nan] for n in names]
    axes[0].boxplot(lat, tick_labels=[_short(n, 16) for n in names])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms per generation")
    axes[0].set_title("Latency (all attempts)")
    prompt = [np.mean([sum(a.prompt_tokens for a in g.attempts) for g in ev.generations[n]] or [0]) for n in names]
    completion = [np.mean([sum(a.completion_tokens for a in g.attempts) for g in ev.generations[n]] or [0])
                  for n in names]
    cost = [sum(a.cost_usd for g in ev.generations[n] for a in g.attempts) for n in names]
    x = np.arange(len(names))
    axes[1].bar(x, prompt, label="prompt", color="#8fa8c8")
    axes[1].bar(x, completion, bottom=prompt, label="completion", color="#4c72b0")
    for j, c in enumerate(cost):
        axes[1].annotate(f"${c:.4f} total", (j, prompt[j] + completion[j]), ha="center", va="bottom", fontsize=8)
    axes[1].set_xticks(x, [_short(n, 16) for n in names])
    axes[1].set_ylabel("tokens per generation")
    axes[1].set_title("Tokens and cost")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


_PLOTTERS = {
    "gate_failures": _plot_gate_failures,
    "counts": _plot_counts,
    "diversity": _plot_diversity,
    "fun": _plot_fun,
    "structure": _plot_structure,
    "latency_cost": _plot_latency_cost,
}


# --------------------------------------------------------------- pictures


def _render_pictures(ev: Evaluation, out: Path, n_specs: int, tile_px: int) -> dict[tuple[str, int], str]:
    """PNG per (backend, spec) for the first ``n_specs`` specs (sample 0); empty if rendering is unavailable."""
    try:
        from engine.picture import render_level_png
    except ImportError as exc:  # the report still reads without pictures
        log.warning("level pictures skipped: engine.picture unavailable (%s)", exc)
        return {}
    pics: dict[tuple[str, int], str] = {}
    for j, (name, gens) in enumerate(ev.generations.items()):
        for g in gens:
            if g.sample != 0 or g.spec_index >= n_specs or g.level is None:
                continue
            rel = f"levels/spec{g.spec_index:03d}_{j}_{_slug(name)}.png"
            render_level_png(g.level, out / rel, tile_px=tile_px)
            pics[(name, g.spec_index)] = rel
    return pics


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:40]


# ------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 12px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4} td.name,th.name{text-align:left}
td.best{background:#e4f4e4;font-weight:600}
.ci{color:#777;font-size:.85em}
.help{color:#666;font-weight:normal;font-size:.8em;display:block}
.plots img{max-width:100%;margin:6px 0;border:1px solid #eee}
.pics td{text-align:center} .pics img{image-rendering:pixelated;max-width:420px}
.ok{color:#2a7a2a} .bad{color:#b22}
details{margin:6px 0}
"""


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}g}"
    return html.escape(str(v))


def _is_prop(v: Any) -> bool:
    return isinstance(v, Mapping) and {"k", "n", "rate"} <= set(v)


def _fmt(v: Any) -> str:
    """A part value as table text: proportions as ``87% [80–92] 26/30``, summaries as ``mean / p50 / p95``."""
    if _is_prop(v):
        if not v["n"]:
            return "–"
        return (f"{100 * v['rate']:.0f}% <span class=ci>[{100 * v['lower95']:.0f}–{100 * v['upper95']:.0f}] "
                f"{v['k']}/{v['n']}</span>")
    if isinstance(v, Mapping) and {"mean", "p50", "p95"} <= set(v):
        return f"{_num(v['mean'])} <span class=ci>p50 {_num(v['p50'])} · p95 {_num(v['p95'])}</span>"
    if isinstance(v, Mapping):
        items = [f"{html.escape(str(k))}: {_fmt(x)}" for k, x in v.items()]
        return "<br>".join(items[:12]) or "–"
    return _num(v)


def _score_cell(rubric: str, s: Mapping[str, Any]) -> str:
    score, (lo, hi) = s["score"], s["ci"]
    if rubric == "cost":
        return f"{_num(score)} ms <span class=ci>[{_num(lo)}, {_num(hi)}]</span>"
    return f"{_num(score)} <span class=ci>[{_num(lo)}, {_num(hi)}]</span>"


def _summary_table(data: Mapping[str, Mapping[str, Any]]) -> str:
    rubrics = list(dict.fromkeys(r for per in data.values() for r in per))
    best: dict[str, str] = {}
    for r in rubrics:
        vals = {n: per[r]["score"] for n, per in data.items() if r in per and per[r]["score"] is not None}
        if len(vals) > 1:
            pick = min if r in LOWER_IS_BETTER else max
            best[r] = pick(vals, key=vals.get)
    head = "".join(
        f"<th>{html.escape(r)}<span class=help>{html.escape(RUBRIC_HELP.get(r, ''))}</span></th>" for r in rubrics
    )
    rows = []
    for name, per in data.items():
        cells = "".join(
            f"<td class='{'best' if best.get(r) == name else ''}'>{_score_cell(r, per[r]) if r in per else '–'}</td>"
            for r in rubrics
        )
        rows.append(f"<tr><td class=name><b>{html.escape(name)}</b></td>{cells}</tr>")
    return f"<table class=summary><tr><th class=name>backend</th>{head}</tr>{''.join(rows)}</table>"


def _parts_table(rubric: str, data: Mapping[str, Mapping[str, Any]]) -> str:
    names = [n for n, per in data.items() if rubric in per]
    keys = list(dict.fromkeys(k for n in names for k in data[n][rubric]["parts"]))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = [
        f"<tr><td class=name>{html.escape(k.replace('_', ' '))}</td>"
        + "".join(f"<td>{_fmt(data[n][rubric]['parts'].get(k))}</td>" for n in names)
        + "</tr>"
        for k in keys
    ]
    return f"<table><tr><th class=name>part</th>{head}</tr>{''.join(rows)}</table>"


def _caption(g: Generation | None) -> str:
    if g is None:
        return "<span class=bad>no output</span>"
    mark = "<span class=ok>valid</span>" if g.valid else "<span class=bad>invalid</span>"
    tries = f"{len(g.attempts)} attempt{'s' if len(g.attempts) != 1 else ''}"
    bits = [mark, tries]
    if g.level is not None:
        bits.append(f"{len(g.level.enemies)} enemies · {len(g.level.items)} items")
    if g.plays:
        bits.append(f"fun {np.mean([p.fun for p in g.plays]):.2f} · "
                    f"done {sum(p.completed for p in g.plays)}/{len(g.plays)}")
    if not g.valid and g.attempts and g.attempts[-1].failures:
        bits.append(html.escape(", ".join(g.attempts[-1].failures[:3])))
    return "<br>".join(bits)


def _pictures_table(ev: Evaluation, pics: Mapping[tuple[str, int], str], n_specs: int) -> str:
    names = list(ev.generations)
    by_key = {(n, g.spec_index): g for n, gens in ev.generations.items() for g in gens if g.sample == 0}
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for i, spec in enumerate(ev.specs[:n_specs]):
        desc = (f"#{i}: {spec.width}×{spec.height} {html.escape(spec.theme)}<br>difficulty {spec.difficulty}<br>"
                f"{spec.enemies} enemies · {spec.items} items")
        cells = []
        for n in names:
            g = by_key.get((n, i))
            rel = pics.get((n, i))
            if rel:
                img = f"<img src='{html.escape(rel)}' alt='{html.escape(n)} level for spec {i}'>"
            elif g is not None and g.level is not None:
                img = f"<pre>{html.escape(g.level.picture())}</pre>"
            else:
                img = ""
            cells.append(f"<td>{img}<br>{_caption(g)}</td>")
        rows.append(f"<tr><td class=name>{desc}</td>{''.join(cells)}</tr>")
    return f"<table class=pics><tr><th class=name>spec</th>{head}</tr>{''.join(rows)}</table>"


def _agreement_table(agreement: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td class=name>{html.escape(r)}</td><td>{_num(a.get('rho'))}</td><td>{_num(a.get('p'))}</td>"
        f"<td>{a.get('n', 0)}</td></tr>"
        for r, a in agreement.items()
    )
    return ("<table><tr><th class=name>rubric</th><th>Spearman ρ</th><th>p</th><th>levels</th></tr>"
            f"{rows}</table>")


def write_report(
    evaluation: Evaluation,
    out_dir: str | os.PathLike[str],
    *,
    pictures: int = 6,
    tile_px: int = 12,
    rating_agreement: Mapping[str, Mapping[str, Any]] | None = None,
    judge_agreement: Mapping[str, Mapping[str, Any]] | None = None,
    rows: list[dict[str, Any]] | None = None,
    title: str = "Dungeon Forge evaluation",
) -> Path:
    """Write the report folder and return the path of ``index.html``.

    ``rows`` are the per-generation rows for ``levels.jsonl`` when the caller
    already made (and annotated) them; by default they are built here.
    """
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "levels").mkdir(parents=True, exist_ok=True)
    data = evaluation.to_dict()
    (out / "evaluation.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    with (out / "levels.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows if rows is not None else generation_rows(evaluation):
            fh.write(json.dumps(row, allow_nan=False) + "\n")

    plots = {name: fn(evaluation, out / "plots" / f"{name}.png") for name, fn in _PLOTTERS.items()}
    pics = _render_pictures(evaluation, out, pictures, tile_px)

    cfg = evaluation.config
    meta = (f"{len(evaluation.specs)} specs × {cfg.n} seed(s) per backend · seed {cfg.seed} · "
            f"up to {cfg.max_attempts} attempts · training levels for novelty: {evaluation.training_levels}")
    info = " · ".join(
        f"{html.escape(n)} = {html.escape(str(i.get('backend')))}"
        + (f" ({html.escape(', '.join(i['model_versions']))})" if i.get("model_versions") else "")
        for n, i in evaluation.backend_info.items()
    )
    sections = [
        f"<h1>{html.escape(title)}</h1><p class=meta>{meta}<br>{info}</p>",
        "<h2>Summary</h2><p class=meta>Score with its 95 % interval; the best backend per rubric is green. "
        "See docs/evaluation.md for what each score means.</p>",
        _summary_table(data["backends"]),
    ]
    if rating_agreement:
        sections.append("<h2>Agreement with designer ratings</h2><p class=meta>Rank correlation between the "
                        "automatic per-level score and the mean rating (1–5) people gave.</p>")
        sections.append(_agreement_table(rating_agreement))
    if judge_agreement:
        sections.append("<h2>Agreement with the LLM judge</h2>")
        sections.append(_agreement_table(judge_agreement))
    sections.append("<h2>Levels side by side</h2><p class=meta>The same spec and seed at every backend "
                    "(first seed), drawn with the game's tiles.</p>")
    sections.append(_pictures_table(evaluation, pics, pictures))
    sections.append("<h2>Plots</h2><div class=plots>")
    sections += [f"<img src='plots/{html.escape(p)}' alt='{html.escape(name)}'>" for name, p in plots.items()]
    sections.append("</div>")
    for rubric in dict.fromkeys(r for per in data["backends"].values() for r in per):
        sections.append(f"<h2>{html.escape(rubric)}</h2><p class=meta>{html.escape(RUBRIC_HELP.get(rubric, ''))}</p>")
        sections.append(_parts_table(rubric, data["backends"]))
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def report_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read ``levels.jsonl`` back from a report folder (or the file itself)."""
    from generator.errors import GeneratorError
    from generator.guards.inputs import MAX_LIST_BYTES, InputFileError, read_file_text

    p = Path(path)
    if p.is_dir():
        p = p / "levels.jsonl"
    try:
        text = read_file_text(p, max_bytes=MAX_LIST_BYTES, what="report rows")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (InputFileError, ValueError) as exc:
        raise GeneratorError(f"{exc}; give --report DIR of an earlier evaluation") from None

