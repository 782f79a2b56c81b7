"""Evaluation framework: score level backends on the same specs, report, and collect designer ratings.

>>> from generator.evaluate import RUBRICS
>>> list(RUBRICS)
['structural', 'constraints', 'fun', 'diversity', 'cost']

Run it as ``python -m generator.evaluate --help``; the scores are explained in
``docs/evaluation.md``.
"""

from __future__ import annotations

from generator.evaluate.rubrics import (
    RATED_RUBRICS,
    RUBRICS,
    Attempt,
    Generation,
    Play,
    RubricContext,
    RubricScore,
    level_id,
    level_scores,
    pass_at_k,
    rubric,
    score_backend,
)
from generator.evaluate.runner import (
    Evaluation,
    EvaluationConfig,
    EvaluationError,
    evaluate,
    generation_rows,
    load_specs,
    random_specs,
    resolve_backend,
    run_backend,
    training_levels_from_store,
)
from generator.evaluate.structure import StructureFeatures, layout_style, structure_features

__all__ = [
    "RATED_RUBRICS",
    "RUBRICS",
    "Attempt",
    "Evaluation",
    "EvaluationConfig",
    "EvaluationError",
    "Generation",
    "Play",
    "RubricContext",
    "RubricScore",
    "StructureFeatures",
    "evaluate",
    "generation_rows",
    "layout_style",
    "level_id",
    "level_scores",
    "load_specs",
    "pass_at_k",
    "random_specs",
    "resolve_backend",
    "rubric",
    "run_backend",
    "score_backend",
    "structure_features",
    "training_levels_from_store",
    "write_report",
]


def __getattr__(name: str):
    if name == "write_report":  # matplotlib is imported only when a report is written
        from generator.evaluate.report import write_report

        return write_report
    raise AttributeError(f"module 'generator.evaluate' has no attribute {name!r}")
