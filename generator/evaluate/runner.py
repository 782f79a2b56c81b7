"""Run backends on the same specs and seeds, validate, play and score what they make.

Backends are called directly (not through the facade's cascade), one attempt
at a time, so both the raw validity of a first attempt and the validity after
retries with feedback are known, and no other backend ever stands in for a
failing one.

Size: over 400 lines on purpose. Resolving a command-line backend name
(controls included), running it attempt by attempt, playing the levels and
scoring them share one seeding rule and one record of each generation;
split, each piece would have to re-derive them.

>>> generation_seed(0, 3, 1) == generation_seed(0, 3, 1) != generation_seed(0, 3, 2)
True
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.content import ALL_THEMES
from engine.core.errors import EngineError
from engine.core.level import SPEC_RANGES, Level, LevelSpec
from generator.errors import BackendError, GeneratorError
from generator.evaluate.rubrics import (
    RUBRICS,
    Attempt,
    Generation,
    Play,
    RubricContext,
    RubricScore,
    score_backend,
)
from generator.evaluate.structure import structure_features

__all__ = [
    "EvaluationError",
    "EvaluationConfig",
    "Evaluation",
    "evaluate",
    "run_backend",
    "resolve_backend",
    "load_specs",
    "random_specs",
    "generation_seed",
    "training_levels_from_store",
    "generation_rows",
]

log = logging.getLogger(__name__)

#: At most this many stored training levels are compared against (novelty is a nearest-neighbour search).
MAX_TRAINING_LEVELS = 1500


class EvaluationError(GeneratorError):
    """The evaluation cannot run as asked (bad spec file, unknown or unavailable backend)."""


@dataclass(frozen=True)
class EvaluationConfig:
    """How an evaluation runs.  Same config and seed: same specs, same seeds per backend, same scores."""

    n: int = 1  #: samples (seeds) per spec
    seed: int = 0
    max_attempts: int = 3  #: attempts per generation, later ones get the validator's feedback
    bots: tuple[str, ...] | None = None  #: bot policies that play each valid level; None = every bot
    max_turns: int | None = None
    progress: bool = True


@dataclass
class Evaluation:
    """Generations and rubric scores per backend, in the order the backends were given."""

    specs: list[LevelSpec]
    config: EvaluationConfig
    generations: dict[str, list[Generation]]
    scores: dict[str, dict[str, RubricScore]]
    training_levels: int = 0
    backend_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: likeness of every other backend's levels to the first backend's (the reference, usually the
    #: teacher) on the same specs: :func:`generator.evaluate.likeness.likeness_table`
    likeness: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"backends": {name: {rubric: {"score", "ci", "parts"}}}, ...}`` (JSON-safe)."""
        return {
            "backends": {
                name: {rubric: s.to_dict() for rubric, s in per.items()} for name, per in self.scores.items()
            },
            "specs": len(self.specs),
            "n": self.config.n,
            "seed": self.config.seed,
            "max_attempts": self.config.max_attempts,
            "training_levels": self.training_levels,
            "backend_info": self.backend_info,
            "likeness": self.likeness,
        }


# ----------------------------------------------------------------- specs


def load_specs(path: str | os.PathLike[str]) -> list[LevelSpec]:
    """Specs from a JSONL file (one spec object per line; blank lines and ``#`` comments skipped)."""
    from generator.guards.inputs import MAX_LIST_BYTES, InputFileError, read_file_text

    p = Path(path)
    try:
        text = read_file_text(p, max_bytes=MAX_LIST_BYTES, what="spec file")
    except InputFileError as exc:
        raise EvaluationError(f"{exc}; pass --specs FILE.jsonl") from None
    specs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            specs.append(LevelSpec.from_json(line))
        except EngineError as exc:
            raise EvaluationError(f"{p}:{lineno}: {exc}; fix that line (one spec object per line)") from None
    if not specs:
        raise EvaluationError(f"{p} holds no specs; write one JSON spec object per line")
    return specs


def random_specs(count: int, seed: int = 0, *, max_width: int = 40, max_height: int = 30) -> list[LevelSpec]:
    """``count`` seeded specs spread over the ranges, coherent the way a game asks.

    Enemies grow and items shrink with difficulty (scaled by area), so a spec
    does not ask for "difficulty 9, no enemies".  Sizes are capped so bots
    finish quickly.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w = int(rng.integers(SPEC_RANGES["width"][0], max_width + 1))
        h = int(rng.integers(SPEC_RANGES["height"][0], max_height + 1))
        difficulty = int(rng.integers(1, 11))
        room_for = max(1, min(SPEC_RANGES["enemies"][1], w * h // 40))
        enemies = int(np.clip(round(room_for * difficulty / 10 + rng.integers(-1, 2)), 0, room_for))
        item_room = max(1, min(SPEC_RANGES["items"][1], w * h // 80))
        items = int(np.clip(round(item_room * (11 - difficulty) / 10 + rng.integers(-1, 2)), 0, item_room))
        out.append(LevelSpec(width=w, height=h, difficulty=difficulty, enemies=enemies, items=items,
                             theme=str(rng.choice(ALL_THEMES))))
    return out


def generation_seed(seed: int, spec_index: int, sample: int) -> int:
    """The seed every backend gets for (spec, sample): independent of the backend, so outputs are comparable."""
    return int(np.random.SeedSequence([seed, spec_index, sample]).generate_state(1)[0] & 0x7FFFFFFF)


# --------------------------------------------------------------- backends


def resolve_backend(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                    student_tries: int | None = None, student_repair: bool | None = None) -> Any:
    """A :class:`~generator.backends.Backend` for a command-line name (built by the facade's ``make_backend``).

    - ``procedural``: the embedded generator;
    - ``teacher`` (or ``llm``): the configured large model when a key or endpoint is set, else procedural;
    - ``student``: the promoted local model for the level call site;
    - ``student:PATH``: a local model folder that need not be promoted;
    - ``control:KIND[:PATH]``: a control through the student's decoding (:func:`control_backend`).

    ``student_tries`` caps the candidates a student samples per attempt (its
    own validate-and-resample loop); 1 measures the raw model.
    ``student_repair=False`` also turns off the student's post-processing
    (walling up sealed empty pockets), so nothing but the model is measured.
    """
    from generator.settings import GeneratorConfig, teacher_configured
    from generator.facade import make_backend

    if name == "procedural":
        return make_backend("procedural")
    if name in ("teacher", "llm"):
        if teacher_configured():
            return make_backend("llm", GeneratorConfig.load(data_dir), data_dir=data_dir)
        log.info("teacher: no API key or endpoint set; the procedural generator is the teacher")
        return make_backend("procedural")
    if name == "student":
        return _cap_tries(make_backend("student", data_dir=data_dir), student_tries, student_repair)
    if name.startswith("student:"):
        model_dir = Path(name.partition(":")[2]).expanduser()
        if not model_dir.is_dir():
            raise EvaluationError(f"student: model folder {model_dir} does not exist; pass student:PATH to a trained model")
        from generator.backends.student import student_backend

        try:
            return _cap_tries(student_backend(model_dir), student_tries, student_repair)
        except ImportError as exc:
            raise EvaluationError(
                f"student: local inference is unavailable ({exc}); pip install 'dungeon-forge[train]'"
            ) from exc
    if name.startswith("control:"):
        return _cap_tries(control_backend(name, data_dir=data_dir), student_tries, student_repair)
    raise EvaluationError(f"unknown backend {name!r}; use teacher, student, student:PATH, control:KIND[:PATH] "
                          "or procedural")


def control_backend(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """``control:KIND`` or ``control:KIND:PATH``: what the decoding rules give a level student without learning.

    KIND is ``untrained`` (the student's architecture with random weights),
    ``uniform`` (all-equal logits) or ``count`` (the left+up Markov count
    model fitted on the store's recent valid levels, what a student trains
    on: :func:`training_levels_from_store`); each goes through the
    student's own masked decoding, post-step and validate-and-resample loop
    (:mod:`generator.local.controls`).  PATH is the student folder whose
    vocabulary and architecture the control borrows (default: the promoted
    level student).  Its reports carry the name, so a student's rubric scores
    can be read beside what its decoding rules alone score.
    """
    from generator.local.controls import CONTROL_NAMES

    _, _, rest = name.partition(":")
    kind, _, path = rest.partition(":")
    if kind not in CONTROL_NAMES:
        raise EvaluationError(f"unknown control {kind!r} in {name!r}; use control:{'|'.join(CONTROL_NAMES)}[:PATH]")
    try:
        from generator.local.controls import CountStudent, uniform_like, untrained_like
        from generator.local.student import StudentBackend
    except ImportError as exc:
        raise EvaluationError(f"controls need local inference ({exc}); pip install 'dungeon-forge[train]'") from exc
    from generator.store.callsite import LEVEL_SITE

    if path:
        model_dir = Path(path).expanduser()
        if not model_dir.is_dir():
            raise EvaluationError(f"{name}: model folder {model_dir} does not exist")
    else:
        from generator.local.registry import Registry

        try:
            model_dir = Registry.in_data_dir(data_dir).model_dir(LEVEL_SITE)
        except Exception as exc:  # noqa: BLE001 - no promoted student, or a corrupt one: say which
            raise EvaluationError(f"{name}: no level student to borrow from ({exc}); pass control:{kind}:PATH") from None
    backend = StudentBackend(model_dir, quantize=None, batch=1)
    like = backend.student
    if kind == "untrained":
        backend.student = untrained_like(like, seed=0)
    elif kind == "uniform":
        backend.student = uniform_like(like)
    else:
        levels = _level_pairs_from_store(data_dir)
        if not levels:
            raise EvaluationError(f"{name}: the store holds no valid levels to fit the count model on "
                                  "(the levels a student trains on); play or bootstrap some first")
        backend.student = CountStudent.fit(levels, like)
    backend.model_version = f"control-{kind}"
    return backend


def _cap_tries(backend: Any, tries: int | None, repair: bool | None = None) -> Any:
    if tries is not None and hasattr(backend, "max_tries"):
        backend.max_tries = max(1, tries)
        backend.batch = max(1, min(getattr(backend, "batch", 1), backend.max_tries))
    if repair is not None and hasattr(backend, "repair"):
        backend.repair = repair
    return backend


# ----------------------------------------------------------------- running


def _failure_codes(report: Any) -> tuple[str, ...]:
    return tuple(f.code for f in report.failures)


def _attempt(backend: Any, spec: LevelSpec, seed: int, attempt: int, feedback: str | None,
             validate: Callable[..., Any]) -> tuple[Attempt, Level | None, str | None, str | None]:
    """One try: returns the attempt record, the parsed level (if any), feedback for the next try, model version."""
    from generator.backends import BackendRequest

    request = BackendRequest(spec=spec, seed=seed, feedback=feedback, attempt=attempt)
    start = time.perf_counter()
    try:
        out = backend.generate(request)
    except Exception as exc:  # a backend failure is a result to score, not a crash
        if not isinstance(exc, BackendError):
            log.warning("backend %s raised %s (not a BackendError): %s", getattr(backend, "name", backend),
                        type(exc).__name__, exc)
        ms = (time.perf_counter() - start) * 1000.0
        return Attempt(valid=False, latency_ms=ms, error=f"{type(exc).__name__}: {exc}"[:500]), None, None, None
    ms = (time.perf_counter() - start) * 1000.0
    report = validate(out.level if out.level is not None else out.raw, spec)
    record = Attempt(
        valid=bool(report.valid),
        failures=_failure_codes(report),
        latency_ms=ms,
        prompt_tokens=int(out.prompt_tokens or 0),
        completion_tokens=int(out.completion_tokens or 0),
        cost_usd=float(out.cost_usd or 0.0),
    )
    level = report.level if report.level is not None else out.level
    return record, level, (None if report.valid else report.feedback()), out.model_version


def _play(level: Level, bots: Sequence[str], seed: int, max_turns: int | None) -> list[Play]:
    from engine.core.bots import play_level

    plays = []
    for bot in bots:
        outcome = play_level(level, bot, seed=seed, max_turns=max_turns)
        plays.append(Play(
            bot=bot,
            completed=bool(outcome.completed),
            died=bool(outcome.died),
            turns=int(outcome.turns),
            fun=float(outcome.fun.score),
            features={k: float(v) for k, v in outcome.fun.features.items()},
        ))
    return plays


def _bot_names(config: EvaluationConfig) -> tuple[str, ...]:
    if config.bots is not None:
        return config.bots
    try:
        from engine.core.bots import BOTS
    except ImportError:
        log.warning("engine.core.bots is not available: levels are not played (fun scores missing)")
        return ()
    return tuple(BOTS)


def run_backend(backend: Any, specs: Sequence[LevelSpec], config: EvaluationConfig,
                *, name: str | None = None, progress: Any = None) -> list[Generation]:
    """Every spec ``config.n`` times at one backend: attempts with feedback, validation, bot play, structure."""
    from generator.validation import validate_level

    name = name or getattr(backend, "name", type(backend).__name__)
    bots = _bot_names(config)
    out: list[Generation] = []
    for i, spec in enumerate(specs):
        for sample in range(config.n):
            seed = generation_seed(config.seed, i, sample)
            attempts: list[Attempt] = []
            level: Level | None = None
            feedback: str | None = None
            version: str | None = None
            for attempt_no in range(1, config.max_attempts + 1):
                record, parsed, feedback, v = _attempt(backend, spec, seed, attempt_no, feedback, validate_level)
                attempts.append(record)
                version = v or version
                if parsed is not None:
                    level = parsed
                if record.valid:
                    break
            gen = Generation(backend=name, spec_index=i, sample=sample, spec=spec, seed=seed,
                             attempts=attempts, level=level, model_version=version)
            if level is not None:
                gen.structure = structure_features(level)
                if gen.valid and bots:
                    gen.plays = _play(level, bots, seed, config.max_turns)
            out.append(gen)
            if progress is not None:
                progress.update(1)
    return out


def _level_pairs_from_store(data_dir: str | os.PathLike[str] | None = None,
                            limit: int = MAX_TRAINING_LEVELS) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(args, level)`` of the most recent valid calls at the level call site (what a student trains on).

    Follows a configured PostgreSQL store; without one, a data dir with no
    ``forge.db`` gives ``[]`` (nothing is created).
    """
    from generator.paths import db_path
    from generator.store import Store
    from generator.store.callsite import LEVEL_SITE
    from generator.store.dialect import configured_url

    db = db_path(data_dir)
    if configured_url(data_dir) is None and not db.exists():
        return []
    with Store.open(db) as store:
        pairs = [(dict(c.record.args or {}), c.record.result) for c in store.iter_calls(site=LEVEL_SITE, valid_only=True)
                 if isinstance(c.record.result, Mapping)]
    return pairs[-limit:]


def training_levels_from_store(data_dir: str | os.PathLike[str] | None = None,
                               limit: int = MAX_TRAINING_LEVELS) -> list[Level]:
    """The most recent valid levels recorded at the level call site (what a student trains on)."""
    from generator.evaluate.metrics import as_level

    levels = [as_level(result) for _, result in _level_pairs_from_store(data_dir, limit=limit)]
    return [level for level in levels if level is not None]


def evaluate(specs: Sequence[LevelSpec], backends: Mapping[str, Any], config: EvaluationConfig | None = None,
             *, training_levels: Sequence[Level] = (), rubrics: Sequence[str] | None = None) -> Evaluation:
    """Run every backend on the same specs and seeds and score each with every rubric.

    ``backends`` maps the name shown in reports to a Backend object.
    """
    config = config or EvaluationConfig()
    from tqdm import tqdm

    total = len(backends) * len(specs) * config.n
    gens: dict[str, list[Generation]] = {}
    info: dict[str, dict[str, Any]] = {}
    with tqdm(total=total, desc="evaluating", unit="level", file=sys.stderr,
              disable=not config.progress, dynamic_ncols=True) as bar:
        for name, backend in backends.items():
            bar.set_postfix_str(name)
            gens[name] = run_backend(backend, specs, config, name=name, progress=bar)
            versions = sorted({g.model_version for g in gens[name] if g.model_version})
            info[name] = {"backend": getattr(backend, "name", type(backend).__name__), "model_versions": versions}
    ctx = RubricContext(training_levels=tuple(training_levels), seed=config.seed)
    scores = {name: score_backend(g, ctx, rubrics or list(RUBRICS)) for name, g in gens.items()}
    return Evaluation(specs=list(specs), config=config, generations=gens, scores=scores,
                      training_levels=len(training_levels), backend_info=info, likeness=_likeness(specs, gens))


def _likeness(specs: Sequence[LevelSpec], gens: Mapping[str, list[Generation]]) -> dict[str, Any] | None:
    """Every backend after the first against the first (sample 0 of each spec), by size band."""
    from generator.evaluate.likeness import likeness_table

    names = list(gens)
    if len(names) < 2 or not specs:
        return None

    def levels(name: str) -> list[Any]:
        first = {g.spec_index: g for g in gens[name] if g.sample == 0}
        return [first[i].level if i in first else None for i in range(len(specs))]

    def firsts(name: str) -> list[bool]:
        first = {g.spec_index: g for g in gens[name] if g.sample == 0}
        return [bool(first[i].raw_valid) if i in first else False for i in range(len(specs))]

    report = likeness_table([s.to_dict() for s in specs], levels(names[0]),
                            {n: levels(n) for n in names[1:]}, valid={n: firsts(n) for n in names[1:]})
    report["reference"] = names[0]
    return report


def generation_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One JSON-able row per generation (the report's ``levels.jsonl``, what the rating page shows)."""
    from generator.evaluate.rubrics import _clean, level_scores

    rows = []
    for name, gens in evaluation.generations.items():
        for g in gens:
            rows.append({
                "level_id": g.level_id,
                "backend": name,
                "spec_index": g.spec_index,
                "sample": g.sample,
                "seed": g.seed,
                "spec": g.spec.to_dict(),
                "valid": g.valid,
                "raw_valid": g.raw_valid,
                "attempts": len(g.attempts),
                "failures": [list(a.failures) for a in g.attempts],
                "latency_ms": g.latency_ms,
                "level": g.level.to_dict() if g.level is not None else None,
                "scores": level_scores(g),
                "structure": g.structure.to_dict() if g.structure is not None else None,
                "plays": [{"bot": p.bot, "completed": p.completed, "died": p.died, "turns": p.turns,
                           "fun": p.fun} for p in g.plays],
            })
    return [_clean(r) for r in rows]
