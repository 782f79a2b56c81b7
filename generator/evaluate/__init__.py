"""Evaluation framework: score level backends on the same specs, report, and collect designer ratings.

>>> from generator.evaluate import RUBRICS
>>> list(RUBRICS)
['structural', 'constraints', 'fun', 'diversity', 'cost']

Run it as ``python -m generator.evaluate --help``; the scores are explained in
``docs/evaluation.md``.

Importing this package gives what a level is scored by: the rubrics, the
structure features and the level metrics (:mod:`generator.evaluate.metrics`,
shared with the training gates) and agreement with the teacher
(:mod:`generator.evaluate.agreement`, shared with routing and the gates).  It
does not import the runner: :mod:`generator.evaluate.runner` (``evaluate``,
``EvaluationConfig``) runs backends through the facade, and routing imports
the metrics, so a package that ran the facade would close an import cycle
(``tests/test_layers.py``).  The report (``write_report``) is in
:mod:`generator.evaluate.report`.
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
from generator.evaluate.structure import StructureFeatures, layout_style, structure_features

__all__ = [
    "RATED_RUBRICS",
    "RUBRICS",
    "Attempt",
    "Generation",
    "Play",
    "RubricContext",
    "RubricScore",
    "StructureFeatures",
    "layout_style",
    "level_id",
    "level_scores",
    "pass_at_k",
    "rubric",
    "score_backend",
    "structure_features",
]

