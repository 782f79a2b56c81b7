"""Likeness of a level student to its teacher, beside the controls, for the training report and gates.

:func:`evaluate_likeness` samples one masked first candidate per held-out spec
from the student and from each control of :mod:`generator.local.controls`
(untrained weights, all-equal logits, the Markov count model; all through the
same decoding), scores the teacher's held-out levels' NLL under each model,
and returns :func:`generator.evaluate.likeness.likeness_table`'s report.
:func:`trainer.gates.decide` then requires the student to beat every control
named in ``GateConfig.likeness_controls`` (``likeness_checks``).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from generator.evaluate.likeness import likeness_table
from generator.local.codec import spec_from_args
from generator.local.student import LEVEL_TEMPERATURE
from generator.evaluate.metrics import size_band

__all__ = ["evaluate_likeness", "teacher_noise_levels", "sample_first_tries"]

log = logging.getLogger(__name__)


def sample_first_tries(generator: Any, site: str, calls: Sequence[Mapping[str, Any]], *, seed: int,
                       temperature: float, desc: str, progress: bool = False
                       ) -> list[Any]:
    """One masked candidate per call (no retries, no repair): :class:`trainer.gates.Sample` each."""
    from trainer.gates import run_student

    return run_student(generator, site, calls, seed=seed, temperature=temperature, progress=progress, desc=desc)


def teacher_noise_levels(calls: Sequence[Mapping[str, Any]], *, seed: int = 10_000) -> list[Any]:
    """The procedural teacher's levels for the same specs with other seeds (the noise floor).

    Meaningful when the teacher *is* the procedural generator (offline data,
    ``--bootstrap``); for an LLM teacher it is the procedural generator's own
    spread, reported under that name.
    """
    from engine.core.level import LevelSpec
    from generator.backends.procedural import generate_procedural

    return [generate_procedural(LevelSpec.from_dict(spec_from_args(dict(a))), seed=seed + i).to_dict()
            for i, a in enumerate(calls)]


def evaluate_likeness(
    student: Any,
    site: str,
    calls: Sequence[Mapping[str, Any]],
    teacher: Sequence[Mapping[str, Any] | None],
    training: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    seed: int = 0,
    temperature: float = LEVEL_TEMPERATURE,
    noise: Sequence[Any] | None = None,
    controls: Sequence[str] = ("untrained", "uniform", "count"),
    progress: bool = False,
) -> dict[str, Any]:
    """The student and its controls on the same held-out calls; see the module docstring.

    ``student`` is a :class:`~generator.local.student.LocalStudent` (fp32);
    ``training`` the ``(args, level)`` pairs it was trained on (the count model
    is fitted on them).  Calls whose teacher level is missing are skipped.
    """
    from generator.local.controls import CountStudent, student_nll_parts, uniform_like, untrained_like

    keep = [i for i, t in enumerate(teacher) if t is not None]
    calls = [dict(calls[i]) for i in keep]
    teacher = [teacher[i] for i in keep]
    noise = [noise[i] for i in keep] if noise is not None else None
    pairs = list(zip(calls, teacher))
    models: dict[str, Any] = {"student": student}
    for name in controls:
        if name == "untrained":
            models[name] = untrained_like(student, seed=seed + 1)
        elif name == "uniform":
            models[name] = uniform_like(student)
        elif name == "count":
            models[name] = CountStudent.fit(training, student)
        else:
            raise ValueError(f"unknown control {name!r}; use untrained, uniform, count")
    levels: dict[str, list[Any]] = {}
    valid: dict[str, list[bool]] = {}
    nll: dict[str, list[tuple[float, int]]] = {}
    latency: dict[str, list[float]] = {}
    placed: dict[str, list[Any]] = {}
    for name, model in models.items():
        samples = sample_first_tries(model, site, calls, seed=seed, temperature=temperature,
                                     desc=f"likeness {name}", progress=progress)
        levels[name], valid[name] = [s.result for s in samples], [s.valid for s in samples]
        latency[name], placed[name] = [s.latency_ms for s in samples], [s.placements for s in samples]
        try:
            nll[name] = model.nll_parts(pairs) if hasattr(model, "nll_parts") else student_nll_parts(model, pairs)
        except ValueError as exc:  # a non-char tokenizer or a level past the context: no NLL, said so
            log.warning("likeness: no NLL for %s (%s)", name, exc)
    report = likeness_table([spec_from_args(a) for a in calls], teacher, levels, valid=valid, nll_parts=nll,
                            noise=noise, placements=placed)
    report["temperature"] = temperature
    report["levels"] = levels  # each generator's first candidates, index-aligned with the calls (for play)
    specs = [spec_from_args(a) for a in calls]
    report["latency_ms_p50"] = {
        name: {band: round(statistics.median(ms[i] for i, s in enumerate(specs) if size_band(s) == band), 1)
               for band in report["bands"]}
        for name, ms in latency.items()
    }
    report["controls"] = list(controls)
    return report
