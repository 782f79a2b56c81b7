"""The HTML report: written with its pictures and plots, and the page links to them."""

from __future__ import annotations

import json
import re

from engine.core.level import Level, LevelSpec, Placed, rows_to_grid
from generator.evaluate.report import PLOTS, report_rows, write_report
from generator.evaluate.rubrics import Attempt, Generation, Play, RubricContext, score_backend
from generator.evaluate.runner import Evaluation, EvaluationConfig
from generator.evaluate.structure import structure_features

SPECS = [
    LevelSpec(width=16, height=12, difficulty=3, enemies=1, items=1, theme="crypt"),
    LevelSpec(width=18, height=12, difficulty=3, enemies=1, items=0, theme="cave"),
]


def _level(spec: LevelSpec, pillar: int) -> Level:
    w, h = spec.width, spec.height
    rows = ["#" * w] + ["#" + "." * (w - 2) + "#"] * (h - 2) + ["#" * w]
    rows[4] = rows[4][:pillar] + "#" + rows[4][pillar + 1:]
    items = [Placed("potion", 3, 3)] * spec.items
    return Level(name="t", grid=rows_to_grid(rows), spawn=(1, 1), exit=(w - 2, h - 2),
                 enemies=[Placed("rat", w - 3, h - 3)], items=items, theme=spec.theme)


def _evaluation() -> Evaluation:
    gens: dict[str, list[Generation]] = {"teacher": [], "student": []}
    for i, spec in enumerate(SPECS):
        for j, name in enumerate(gens):
            ok = name == "teacher" or i == 0
            lv = _level(spec, 3 + 2 * i + j)
            attempts = [Attempt(valid=ok, failures=() if ok else ("V6.exit_unreachable",), latency_ms=5.0 + j,
                                prompt_tokens=20 * j, completion_tokens=300 * j, cost_usd=0.0)]
            plays = [Play("explorer", True, False, 30, 0.6 + 0.1 * j), Play("speedrunner", ok, not ok, 12, 0.4)]
            gens[name].append(Generation(backend=name, spec_index=i, sample=0, spec=spec, seed=i,
                                         attempts=attempts, level=lv, plays=plays if ok else [],
                                         structure=structure_features(lv)))
    scores = {n: score_backend(g, RubricContext()) for n, g in gens.items()}
    return Evaluation(specs=SPECS, config=EvaluationConfig(), generations=gens, scores=scores,
                      backend_info={"teacher": {"backend": "procedural"}, "student": {"backend": "student"}})


def test_report_writes_pictures_plots_and_links_them(tmp_path):
    ev = _evaluation()
    index = write_report(ev, tmp_path / "rep",
                         rating_agreement={"fun": {"rho": 0.5, "p": 0.2, "n": 6}})
    page = index.read_text(encoding="utf-8")
    for name in PLOTS:
        assert (tmp_path / "rep" / "plots" / f"{name}.png").stat().st_size > 1000
        assert f"plots/{name}.png" in page
    pictures = sorted((tmp_path / "rep" / "levels").glob("*.png"))
    assert len(pictures) == 4  # two specs x two backends, side by side
    for pic in pictures:
        assert f"levels/{pic.name}" in page
    # The summary names every backend and rubric, with intervals.
    summary = page.split("<table class=summary>")[1].split("</table>")[0]
    for word in ("teacher", "student", "structural", "constraints", "fun", "diversity", "cost"):
        assert word in summary
    assert re.search(r"\[\d\.\d+, \d\.?\d*\]", summary)
    assert "Spearman" in page
    data = json.loads((tmp_path / "rep" / "evaluation.json").read_text())
    assert data["backends"]["teacher"]["structural"]["score"] == 1.0
    assert data["backends"]["student"]["structural"]["score"] == 0.5
    rows = report_rows(tmp_path / "rep")
    assert len(rows) == 4 and {r["backend"] for r in rows} == {"teacher", "student"}
    assert all(r["level_id"] and r["level"]["rows"] for r in rows)
