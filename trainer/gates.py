"""Evaluation gates: the student against the teacher on held-out specs.

:func:`run_student` asks a student for one output per held-out call and
judges each one (levels: every validation gate against the requested spec;
other sites: the site's validator).  :func:`score` turns the samples into the
shared metrics of :mod:`generator.evaluate.metrics` -- the evaluation framework uses
the same functions, so numbers agree across reports:

- ``validity`` with its Wilson 95 % lower bound (first try, no retries),
- ``controllability`` per spec field and ``joint``,
- ``diversity`` (mean pairwise tile Hamming) and its ratio to the teacher's
  on the same specs,
- ``novelty`` (share not within 5 % of the tiles of any training level),
- latency and tokens per output,
- ``agreement`` (other sites, unless judged ``validity-only``): the share of
  held-out calls on which the student gave the teacher's answer, with its
  Wilson interval and agreement per output field
  (:mod:`generator.evaluate.agreement`).

:func:`decide` applies a preset's :class:`~trainer.config.GateConfig`: a new
version is promoted for its call site only if every gate passes, the int8
model kept its validity (:mod:`trainer.quantize`) and it is not worse than
the version it would replace (within ``not_worse_margin``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from generator.local.codec import is_level_site, spec_from_args
from generator.evaluate.metrics import controllability, diversity, novelty, summarize, validity
from trainer.config import GateConfig

__all__ = ["Sample", "GateCheck", "GateResult", "judge", "run_student", "score", "agreement", "decide", "likeness_checks"]

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One student output for one held-out call."""

    args: dict[str, Any]
    result: dict[str, Any] | None  #: parsed output, None when it did not parse
    valid: bool
    failures: list[str] = field(default_factory=list)  #: failure codes
    latency_ms: float = 0.0
    tokens: int = 0
    text: str = ""
    first_valid: bool | None = None  #: the first candidate's verdict when judged as served
    placements: list[Any] = field(default_factory=list)  #: the level grammar's record of placed things
    agree: bool | None = None  #: the whole answer is the teacher's (None: not compared)
    disagree: list[str] = field(default_factory=list)  #: fields that differ from the teacher's answer


def judge(
    site: str, args: dict[str, Any], result: dict[str, Any] | None, output_schema: dict[str, Any] | None = None
) -> tuple[bool, list[str]]:
    """Is ``result`` a good answer to a call with ``args``? Returns ``(valid, failure codes)``.

    Levels pass every validation gate against the requested spec; other sites
    their registered validator, else their output schema (as recorded with the
    teacher's calls), else being a JSON object at all.
    """
    if result is None:
        return False, ["V0.parse"]
    if is_level_site(site):
        from engine.core.level import LevelSpec
        from generator.validation import validate_level

        report = validate_level(result, LevelSpec.from_dict(spec_from_args(args)))
        return bool(report.valid), [f.code for f in report.failures]
    from generator.validation.sites import judge as judge_site, validator_for

    if output_schema is None and validator_for(site) is None:
        return isinstance(result, dict), [] if isinstance(result, dict) else ["V0.schema.type"]
    ok, failures = judge_site(site, result, output_schema)
    return bool(ok), [str(f.get("code", "?")) for f in failures]


def run_student(
    student: Any,
    site: str,
    calls: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    max_new_tokens: int | None = None,
    output_schema: dict[str, Any] | None = None,
    temperature: float | None = None,
    progress: bool = False,
    desc: str = "evaluate",
    serve_tries: int = 1,
    serve_repair: bool = False,
) -> list[Sample]:
    """One output per call from ``student`` (``generate(args, seed=, max_new_tokens=)`` -> StudentOutput).

    With ``serve_tries`` > 1 at the level site the student is judged as it is
    served (:class:`generator.local.student.StudentBackend`): up to that many
    masked samples, the first valid one wins; ``Sample.first_valid`` keeps the
    first try's verdict so the raw rate is still reported.
    """
    from tqdm import tqdm

    if serve_tries > 1 and is_level_site(site):
        return _run_served(student, site, calls, seed=seed, max_new_tokens=max_new_tokens, temperature=temperature,
                           tries=serve_tries, repair=serve_repair, progress=progress, desc=desc)
    samples = []
    for i, args in enumerate(tqdm(calls, desc=desc, unit="call", disable=not progress)):
        kwargs: dict[str, Any] = {"seed": seed + i}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        started = time.perf_counter()
        try:
            out = student.generate(dict(args), **kwargs)
        except Exception as exc:  # noqa: BLE001 - a crashing output is an invalid output, recorded
            log.warning("student failed on %s: %s", args, exc)
            samples.append(Sample(dict(args), None, False, [f"error.{type(exc).__name__}"],
                                  (time.perf_counter() - started) * 1000, text=f"{type(exc).__name__}: {exc}"))
            continue
        result = out.result if isinstance(out.result, dict) else None
        ok, codes = judge(site, dict(args), result, output_schema)
        samples.append(Sample(dict(args), result, ok, codes, float(out.latency_ms), int(out.tokens), out.text,
                              placements=list(getattr(out, "placements", None) or [])))
    return samples


def _run_served(student: Any, site: str, calls: Sequence[Mapping[str, Any]], *, seed: int,
                max_new_tokens: int | None, temperature: float | None, tries: int, repair: bool,
                progress: bool, desc: str) -> list[Sample]:
    from tqdm import tqdm

    from engine.core.level import LevelSpec
    from generator.local.codec import spec_from_args
    from generator.local.decoding import generate_valid_level, sampling_seed

    samples = []
    for i, args in enumerate(tqdm(calls, desc=f"{desc} (≤{tries} tries)", unit="call", disable=not progress)):
        kwargs: dict[str, Any] = {"repair": repair}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        outputs: list[Any] = []

        def sample(seed_: int, a: dict[str, Any] = dict(args)) -> Any:
            out = student.generate(a, seed=seed_, **kwargs)
            outputs.append(out)
            return out

        started = time.perf_counter()
        try:
            spec = LevelSpec.from_dict(spec_from_args(dict(args)))
            tried = generate_valid_level(sample, spec, seed=sampling_seed(seed + i), max_tries=tries)
        except Exception as exc:  # noqa: BLE001 - a crashing output is an invalid output, recorded
            log.warning("student failed on %s: %s", args, exc)
            samples.append(Sample(dict(args), None, False, [f"error.{type(exc).__name__}"],
                                  (time.perf_counter() - started) * 1000, first_valid=False))
            continue
        latency = (time.perf_counter() - started) * 1000
        out = tried.output
        result = out.result if isinstance(out.result, dict) else None
        ok, codes = judge(site, dict(args), result, None)
        first = outputs[0].result if outputs and isinstance(outputs[0].result, dict) else None
        first_ok = judge(site, dict(args), first, None)[0] if first is not None else False
        samples.append(Sample(dict(args), result, ok, codes, latency, int(out.tokens), out.text, first_valid=first_ok))
    return samples


def _specs(site: str, samples: Sequence[Sample]) -> list[dict[str, Any]] | None:
    if not is_level_site(site):
        return None
    return [spec_from_args(s.args) for s in samples]


def score(
    site: str,
    samples: Sequence[Sample],
    *,
    teacher_results: Sequence[Mapping[str, Any] | None] = (),
    training_results: Sequence[Mapping[str, Any] | None] = (),
    judge_spec: Any = None,
    output_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The gate metrics of ``samples``; level metrics only for the level site.

    With ``judge_spec`` (a :class:`generator.evaluate.agreement.JudgeSpec` that
    compares) each sample is compared with ``teacher_results[i]``, the
    teacher's answer to the same call, and ``agreement`` is added.
    """
    v = validity(s.valid for s in samples)
    first_fail: dict[str, int] = {}
    for s in samples:
        for code in s.failures[:1]:
            first_fail[code] = first_fail.get(code, 0) + 1
    out: dict[str, Any] = {
        "n": len(samples),
        "validity": v.rate,
        "validity_lower95": v.lower95,
        "validity_first_try": (
            sum(1 for s in samples if s.first_valid) / len(samples)
            if samples and all(s.first_valid is not None for s in samples) else v.rate
        ),
        "validity_detail": v.to_dict(),
        "failures": dict(sorted(first_fail.items(), key=lambda kv: -kv[1])),
        "latency_ms": summarize(s.latency_ms for s in samples).to_dict(),
        "tokens_per_output": summarize(s.tokens for s in samples).to_dict(),
    }
    if judge_spec is not None and judge_spec.compares and not is_level_site(site):
        out["agreement"] = agreement(samples, teacher_results, judge_spec, output_schema)
    specs = _specs(site, samples)
    if specs is not None:
        levels = [s.result for s in samples]
        c = controllability(levels, specs)
        out["controllability"] = {k: p.rate for k, p in c.fields.items()} | {"joint": c.joint.rate}
        out["diversity"] = diversity(levels)
        teacher = [t for t in teacher_results if t is not None]
        out["teacher_diversity"] = diversity(teacher) if teacher else None
        out["diversity_ratio"] = (out["diversity"] / out["teacher_diversity"]) if out["teacher_diversity"] else None
        out["novelty"] = novelty(levels, list(training_results))
    return out


def agreement(samples: Sequence[Sample], teacher_results: Sequence[Any], judge_spec: Any,
              output_schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Whole-answer and per-field agreement of ``samples`` with the teacher's answers (sets ``Sample.agree``)."""
    from generator.evaluate.agreement import AgreementStats, compare

    if len(teacher_results) != len(samples):
        raise ValueError(f"agreement needs the teacher's answer to each of the {len(samples)} calls, "
                         f"got {len(teacher_results)}")
    comparisons = []
    for s, t in zip(samples, teacher_results):
        c = compare(s.result, t, schema=output_schema, spec=judge_spec)
        s.agree, s.disagree = c.agree, c.disagreeing()
        comparisons.append(c)
    return {**AgreementStats.of(comparisons).to_dict(), "judge": judge_spec.to_dict()}


@dataclass
class GateCheck:
    name: str
    value: float | None
    threshold: float | None
    ok: bool
    why: str = ""


@dataclass
class GateResult:
    passed: bool
    checks: list[GateCheck]

    @property
    def reasons(self) -> list[str]:
        return [c.why for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": [c.__dict__ for c in self.checks],
        }


def _at_least(name: str, value: float | None, threshold: float | None) -> GateCheck:
    if threshold is None:
        return GateCheck(name, value, None, True, "no threshold")
    if value is None:
        return GateCheck(name, None, threshold, threshold <= 0, f"{name}: not measured (needs >= {threshold})")
    ok = value >= threshold - 1e-12
    return GateCheck(name, value, threshold, ok, f"{name} {value:.3f} {'>=' if ok else '<'} {threshold}")


def _agreement_check(agreement: Mapping[str, Any], threshold: float | None) -> GateCheck:
    """Held-out whole-answer agreement against ``threshold``; a failure names the weakest field."""
    check = _at_least("agreement", agreement.get("rate"), threshold)
    n, k = agreement.get("n", 0), agreement.get("agree", 0)
    check.why += f" ({k}/{n} answers the teacher's, 95 % lower bound {float(agreement.get('lower95', 0.0)):.3f})"
    weakest = agreement.get("weakest_field")
    fields = agreement.get("fields") or {}
    if weakest is not None and weakest in fields:
        check.why += f"; weakest field {weakest!r} agrees {float(fields[weakest]['rate']):.2f}"
    return check


def decide(
    metrics: Mapping[str, Any],
    cfg: GateConfig,
    *,
    current: Mapping[str, Any] | None = None,
    quantization_ok: bool | None = None,
    quantization_reason: str = "",
    likeness: Mapping[str, Any] | None = None,
) -> GateResult:
    """Apply the gates to ``metrics`` (from :func:`score`); ``current``: the serving version's metrics.

    ``likeness`` is :func:`trainer.likeness.evaluate_likeness`'s report; with
    ``cfg.likeness_controls`` set the student must beat each of those controls
    (:func:`likeness_checks`), and a missing report fails the gate.
    """
    control = metrics.get("controllability") or {}
    checks = [
        _at_least("validity", metrics.get("validity"), cfg.min_validity),
        _at_least("validity_lower95", metrics.get("validity_lower95"), cfg.min_validity_lower95),
    ]
    if "controllability" in metrics:
        checks += [
            _at_least("control_joint", control.get("joint"), cfg.min_control_joint),
            _at_least("diversity_ratio", metrics.get("diversity_ratio"), cfg.min_diversity_ratio)
            if metrics.get("teacher_diversity") else GateCheck("diversity_ratio", None, cfg.min_diversity_ratio, True,
                                                               "teacher diversity unknown: not gated"),
            _at_least("novelty", metrics.get("novelty"), cfg.min_novelty),
        ]
    agreement = metrics.get("agreement")
    if isinstance(agreement, Mapping):
        checks.append(_agreement_check(agreement, cfg.min_agreement))
    if cfg.max_latency_p50_ms is not None:
        p50 = float((metrics.get("latency_ms") or {}).get("p50", 0.0))
        ok = p50 <= cfg.max_latency_p50_ms
        checks.append(GateCheck("latency_p50_ms", p50, cfg.max_latency_p50_ms, ok,
                                f"latency p50 {p50:.0f} ms {'<=' if ok else '>'} {cfg.max_latency_p50_ms:.0f} ms"))
    if quantization_ok is not None:
        checks.append(GateCheck("int8", None, None, quantization_ok, quantization_reason or "int8 re-evaluation"))
    if "controllability" in metrics:  # the level site: likeness to the teacher beside the controls
        checks += likeness_checks(likeness, cfg)
    if current:
        current_agreement = current.get("agreement") if isinstance(current.get("agreement"), Mapping) else {}
        for key, value in (("validity", metrics.get("validity")),
                           ("control_joint", control.get("joint")),
                           ("agreement", (agreement or {}).get("rate") if isinstance(agreement, Mapping) else None)):
            old = (current.get(key) if key == "validity" else current_agreement.get("rate") if key == "agreement"
                   else (current.get("controllability") or {}).get("joint"))
            if old is None or value is None:
                continue
            floor = float(old) - cfg.not_worse_margin
            ok = float(value) >= floor - 1e-12
            checks.append(GateCheck(f"not_worse_{key}", float(value), floor, ok,
                                    f"{key} {value:.3f} vs current {old:.3f} (margin {cfg.not_worse_margin})"))
    return GateResult(all(c.ok for c in checks), checks)




def likeness_checks(report: Mapping[str, Any] | None, cfg: GateConfig) -> list[GateCheck]:
    """The student must beat each control of ``cfg.likeness_controls`` on every likeness metric.

    Pattern JSD and mean structure W1 (lower is better) must be at most
    ``(1 - cfg.likeness_margin)`` times the control's; the teacher's held-out
    NLL must be at least ``cfg.nll_margin`` nats per tile below the control's
    (where both were measured).  A metric measured on only one side fails:
    neither an unmeasured student nor a control that produced nothing
    lets a version through.
    """
    from generator.evaluate.likeness import LIKENESS_METRICS

    if not cfg.likeness_controls:
        return []
    if not report:
        return [GateCheck("likeness", None, None, False, "likeness: not measured (gates.likeness_controls is set)")]
    gens = report.get("generators") or {}
    me = gens.get("student") or {}
    checks = []
    for control in cfg.likeness_controls:
        other = gens.get(control)
        if other is None:
            checks.append(GateCheck(f"beats_{control}", None, None, False, f"likeness: control {control} not measured"))
            continue
        for metric in LIKENESS_METRICS:
            theirs, mine = other.get(metric), me.get(metric)
            name = f"{metric}_vs_{control}"
            if theirs is None:
                if mine is not None:  # the control produced nothing to compare: no evidence either way
                    checks.append(GateCheck(name, float(mine), None, False,
                                            f"{metric}: the {control} control was not measured"))
                continue
            if metric == "nll":
                limit = float(theirs) - cfg.nll_margin
                rule = f"{theirs:.3f} - {cfg.nll_margin}"
            else:
                limit = float(theirs) * (1.0 - cfg.likeness_margin)
                rule = f"(1 - {cfg.likeness_margin}) x {theirs:.3f}"
            if mine is None:
                checks.append(GateCheck(name, None, limit, False, f"{metric}: student not measured ({control} {theirs:.3f})"))
                continue
            ok = float(mine) <= limit + 1e-12
            checks.append(GateCheck(name, float(mine), limit, ok,
                                    f"{metric} {mine:.3f} {'<=' if ok else '>'} {rule} ({control} control)"))
    return checks
