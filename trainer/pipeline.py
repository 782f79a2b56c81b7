"""One training run for one call site, start to finish:

    dataset -> train -> merge/quantize -> GGUF export -> evaluate -> register -> maybe promote

Size: over 400 lines on purpose. The stages of one run and their resume points
are read top to bottom in one module.

Each run has a folder ``<data dir>/runs/<time>-<site>/`` holding the exported
dataset, the training output (with resumable checkpoints), the merged
artefact, the evaluation, and ``report.json`` / ``report.md``.  Every stage
writes ``stages/<stage>.json`` when it finishes, so :func:`run` with
``resume=`` picks up after the last finished stage (and training itself
resumes from its last checkpoint).

:func:`needs_training` is the ``--if-needed`` rule: train only when the site
has at least ``schedule.min_new_examples`` new valid records since its latest
version (or enough for a first version) and the machine is idle.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from generator.local.codec import is_level_site, spec_from_args
from generator.local.registry import SPEC_RANGE_FIELDS, Registry, RegistryError
from trainer.config import PipelineConfig, from_dict
from trainer.dataset import Dataset, build_dataset, load_exported
from trainer.errors import DatasetError, TrainerError

__all__ = ["STAGES", "RunReport", "choose_site", "needs_training", "run", "latest_unfinished_run", "code_revision"]

log = logging.getLogger(__name__)

STAGES: Final = ("dataset", "train", "quantize", "export", "evaluate", "register")
#: The keys ``python -m generator.train --json`` always prints.
HEADLINE: Final = ("site", "version", "base", "train_examples", "heldout_examples", "validity", "validity_lower95",
                   "agreement", "agreement_lower95", "weakest_field", "controllability", "diversity", "novelty", "quantized_validity", "gguf_validity", "promoted", "train_seconds",
                   "tokens_per_s")


@dataclass
class RunReport:
    """What a run did; ``to_dict()`` is the CLI's JSON object."""

    site: str
    run_dir: Path
    config: PipelineConfig
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def headline(self) -> dict[str, Any]:
        ds = self.stages.get("dataset", {})
        tr = self.stages.get("train", {})
        ev = self.stages.get("evaluate", {})
        reg = self.stages.get("register", {})
        m = ev.get("metrics", {})
        q = ev.get("int8_metrics", {})
        control = m.get("controllability")
        agreement = m.get("agreement") or {}
        return {
            "site": self.site,
            "version": reg.get("version"),
            "base": self.config.train.base,
            "train_examples": ds.get("train_examples"),
            "heldout_examples": ds.get("heldout_examples"),
            "validity": m.get("validity"),
            "validity_lower95": m.get("validity_lower95"),
            "agreement": agreement.get("rate"),
            "agreement_lower95": agreement.get("lower95"),
            "weakest_field": agreement.get("weakest_field"),
            "controllability": control.get("joint") if isinstance(control, dict) else None,
            "diversity": m.get("diversity"),
            "novelty": m.get("novelty"),
            "quantized_validity": q.get("validity"),
            "gguf_validity": (ev.get("gguf_metrics") or {}).get("validity"),
            "promoted": bool(reg.get("promoted", False)),
            "train_seconds": tr.get("train_seconds"),
            "tokens_per_s": tr.get("tokens_per_s"),
        }

    def to_dict(self) -> dict[str, Any]:
        ev = self.stages.get("evaluate", {})
        return {
            **self.headline(),
            "preset": self.config.name,
            "run_dir": str(self.run_dir),
            "controllability_fields": (ev.get("metrics") or {}).get("controllability"),
            "agreement_fields": ((ev.get("metrics") or {}).get("agreement") or {}).get("fields"),
            "judge": ((ev.get("metrics") or {}).get("agreement") or {}).get("judge"),
            "gates": ev.get("gates"),
            "likeness": _likeness_headline(ev.get("likeness")),
            "quantization": ev.get("quantization"),
            "dataset": self.stages.get("dataset"),
            "train": {k: v for k, v in self.stages.get("train", {}).items() if k != "history"},
            "artefacts": self.stages.get("export", {}).get("files"),
            "registry": self.stages.get("register"),
        }


# ------------------------------------------------------------------ helpers


def code_revision() -> str | None:
    """Short git commit of the code doing the training (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def choose_site(store: Any, site: str | None = None) -> str:
    """The site to train: ``site``, else the level site if it has data, else the site with most valid calls."""
    if site:
        return site
    counts: dict[str, int] = {}
    for s in store.sites():
        counts[s] = sum(1 for _ in store.iter_calls(s, valid_only=True))
    counts = {s: n for s, n in counts.items() if n}
    if not counts:
        raise DatasetError("the store has no valid calls yet; play, or run `python -m generator.train --bootstrap 2000`")
    levels = [s for s in counts if is_level_site(s)]
    if levels:
        return max(levels, key=lambda s: counts[s])
    return max(counts, key=lambda s: counts[s])


def needs_training(store: Any, registry: Registry, site: str, cfg: PipelineConfig) -> tuple[bool, str]:
    """Whether ``--if-needed`` should train ``site`` now, and why (not)."""
    latest = registry.latest(site)
    since = latest.created if latest else None
    new = sum(1 for _ in store.iter_calls(site, valid_only=True, since=since))
    need = cfg.schedule.min_new_examples if latest else max(cfg.schedule.min_new_examples, cfg.dataset.min_examples)
    if new < need:
        what = f"since {latest.version}" if latest else "in total"
        return False, f"{new} new valid records {what}, need {need} (schedule.min_new_examples)"
    try:
        load = os.getloadavg()[0] / max(1, os.cpu_count() or 1)
    except OSError:  # not available on this platform: treat as idle
        load = 0.0
    if load > cfg.schedule.max_load_per_cpu:
        return False, f"machine busy (load {load:.2f} per core > {cfg.schedule.max_load_per_cpu})"
    return True, f"{new} new valid records (need {need}), load ok"


def _slug(site: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", site.rpartition("#")[0] or site).strip("-")[:60]


def latest_unfinished_run(runs_dir: Path, site: str | None = None) -> Path | None:
    """The newest run folder without a report (for ``--resume`` without a path)."""
    if not runs_dir.is_dir():
        return None
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if (d / "report.json").exists() or not (d / "run.json").is_file():
            continue
        info = json.loads((d / "run.json").read_text())
        if site is None or info.get("site") == site:
            return d
    return None


class _Stages:
    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)

    def done(self, name: str) -> dict[str, Any] | None:
        p = self.dir / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def finish(self, name: str, result: dict[str, Any]) -> dict[str, Any]:
        tmp = self.dir / f".{name}.json.tmp"
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(self.dir / f"{name}.json")
        return result


# ------------------------------------------------------------------ stages


def _stage_dataset(store: Any, site: str, cfg: PipelineConfig, run_dir: Path) -> dict[str, Any]:
    ds = build_dataset(store, site, cfg.dataset)
    paths = ds.export(run_dir / "dataset")
    return {"hash": ds.hash, "train_examples": len(ds.train), "heldout_examples": len(ds.eval),
            "train_stream": sum(e.repeat for e in ds.train), "heldout_specs": len(ds.heldout_specs),
            "spec_ranges": spec_ranges(site, ds, cfg.train.max_len), "stats": ds.stats, "files": {k: str(v) for k, v in paths.items()}}


def spec_ranges(site: str, ds: Dataset, max_len: int | None = None) -> dict[str, list[int]] | None:
    """The smallest and largest value of each of ``SPEC_RANGE_FIELDS`` over the level specs the student learned whole.

    Only training examples whose text fits in ``max_len`` count (characters:
    a bound on tokens for the char tokenizer micro students use): the loop
    cuts longer ones, so a student has never written a whole level of their
    size. Registered in the version's ``metrics["spec_ranges"]``; routing
    (``generator.routing.wrappers.SpecEnvelope``) lets the student serve, and
    shadows it, only inside them. None for other sites; an empty area range
    when no example fits.
    """
    if not is_level_site(site):
        return None
    specs = [spec_from_args(ex.args) for ex in ds.train if max_len is None or len(ex.text) + 2 <= max_len]
    if not specs:
        return {"area": [0, 0]}
    out = {}
    for name in SPEC_RANGE_FIELDS:
        values = [int(s["width"]) * int(s["height"]) if name == "area" else int(s[name]) for s in specs]
        out[name] = [min(values), max(values)]
    return out


def _training_texts(ds: Dataset, cfg: PipelineConfig) -> tuple[list[Any], list[Any]]:
    """Micro students learn the compact text whole; a pretrained base gets (prompt, completion) pairs
    that the loop lays out in the base's chat template, learning the completion only."""
    if cfg.train.base == "micro":
        return ds.train_texts(seed=cfg.train.seed), ds.eval_texts()
    return ds.train_pairs(seed=cfg.train.seed), ds.eval_pairs()


def _stage_train(ds: Dataset, cfg: PipelineConfig, run_dir: Path, progress: bool) -> dict[str, Any]:
    from trainer import loop

    tc = cfg.train
    out = loop.train(tc, *_training_texts(ds, cfg), run_dir / "model", progress=progress)
    result = out if hasattr(out, "tokens_per_s") else loop.read_result(run_dir / "model")
    return {"step": result.step, "total_steps": result.total_steps, "completed": result.completed,
            "train_loss": result.train_loss, "eval_loss": result.eval_loss, "tokens_per_s": result.tokens_per_s,
            "train_seconds": result.train_seconds, "history": result.history[-50:]}


#: What the artefact of a LoRA run on a pretrained base keeps: the adapters and the files naming
#: the base and its prompt format (megabytes), not a merged copy of the weights.
ADAPTER_ARTEFACT: Final = ("adapter_config.json", "adapter_model.safetensors", "student_base.json", "config.json",
                           "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                           "generation_config.json")


def _stage_quantize(ds: Dataset, run_dir: Path, cfg: PipelineConfig | None = None) -> dict[str, Any]:
    import shutil

    from trainer.quantize import merge_lora

    src, out = run_dir / "model", run_dir / "artefact"
    if (src / "student_base.json").is_file():  # adapters on a pretrained base: kept as adapters
        out.mkdir(parents=True, exist_ok=True)
        for name in ADAPTER_ARTEFACT:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
    else:
        out = merge_lora(src, out)
    if cfg is not None and cfg.dataset.row_stride and is_level_site(ds.site):
        # the runtime reads the row form from the model's config (LocalStudent.row_stride)
        conf = json.loads((out / "config.json").read_text())
        conf["forge_row_stride"] = int(cfg.dataset.row_stride)
        (out / "config.json").write_text(json.dumps(conf, indent=2))
    if not is_level_site(ds.site):
        if ds.output_schema is not None:
            # The schema-constrained decoder of a generic site reads it (generator.local.constrain).
            (out / "output_schema.json").write_text(json.dumps(ds.output_schema, indent=2))
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        longest = max((len(tok.encode(ex.completion, add_special_tokens=False).ids) for ex in ds.train), default=256)
        # An answer may take twice the teacher's longest: a string that never closes stops there, not at 1,024.
        (out / "student.json").write_text(json.dumps({"site": ds.site, "max_new_tokens": 2 * longest + 16}))
    return {"artefact_dir": str(out), "files": sorted(p.name for p in out.iterdir() if p.is_file())}


def _stage_export(cfg: PipelineConfig, run_dir: Path) -> dict[str, Any]:
    import shutil
    import tempfile

    from generator.local.gguf import export_gguf

    art = run_dir / "artefact"
    files = {}
    if cfg.dataset.row_stride and (art / "model.safetensors").is_file():
        # the GGUF worker writes unpadded rows; a padded-row student is served by torch only (for now)
        files["model.safetensors"] = (art / "model.safetensors").stat().st_size
        return {"files": files, "skipped": "gguf: padded rows (dataset.row_stride) are served by torch"}
    src, merged = art, None
    if (art / "student_base.json").is_file():
        # One merged copy, and only as GGUF: the adapters are merged in a scratch folder that is deleted.
        from generator.local.student import load_adapted

        merged = Path(tempfile.mkdtemp(prefix="merged-", dir=run_dir))
        model = load_adapted(art)
        model.save_pretrained(str(merged), safe_serialization=True)
        del model
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "student_base.json"):
            if (art / name).is_file():
                shutil.copy2(art / name, merged / name)
        src = merged
    try:
        for qtype in cfg.quantize.gguf_types:
            path = export_gguf(src, art / f"student-{qtype}.gguf", qtype, name=f"forge-student-{qtype}")
            files[f"student-{qtype}.gguf"] = path.stat().st_size
    finally:
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
    for name in ("model.safetensors", "adapter_model.safetensors"):
        if (art / name).is_file():
            files[name] = (art / name).stat().st_size
    return {"files": files}


def _stage_evaluate(site: str, ds: Dataset, cfg: PipelineConfig, run_dir: Path, current: dict[str, Any] | None,
                    progress: bool, data_dir: Path | None = None) -> dict[str, Any]:
    from generator.local.student import LocalStudent
    from trainer.gates import decide, run_student, score
    from trainer.quantize import quantization_verdict

    g = cfg.gates
    calls, teacher, seen = [], [], set()
    for ex in ds.eval:
        if ex.spec_key not in seen:
            seen.add(ex.spec_key)
            calls.append(ex.args)
            teacher.append(ex.result)
    calls, teacher = calls[: g.eval_specs], teacher[: g.eval_specs]
    training = [ex.result for ex in ds.train]
    from generator.evaluate.agreement import JudgeConfig

    judge_spec = JudgeConfig.load(data_dir).for_site(site, ds.output_schema, teacher[0] if teacher else None)
    judged = {"teacher_results": teacher, "training_results": training, "judge_spec": judge_spec,
              "output_schema": ds.output_schema}
    art = run_dir / "artefact"
    common = {"seed": cfg.train.seed, "max_new_tokens": g.max_new_tokens, "output_schema": ds.output_schema,
              # a generic site is served greedily (one answer per call): judge it that way
              "temperature": g.temperature if is_level_site(site) else None, "progress": progress,
              "serve_tries": g.serve_tries, "serve_repair": g.serve_repair}

    student = LocalStudent.load(art, quantize=None, site=site)
    samples = run_student(student, site, calls, desc="evaluate fp32", **common)
    _fail_if_systematic(samples, "fp32")
    metrics = score(site, samples, **judged)
    likeness = None
    if is_level_site(site) and g.likeness:
        from trainer.likeness import evaluate_likeness, teacher_noise_levels

        likeness = evaluate_likeness(student, site, calls, teacher, [(ex.args, ex.result) for ex in ds.train],
                                     seed=cfg.train.seed, temperature=g.temperature,
                                     noise=teacher_noise_levels(calls), progress=progress)
        likeness.pop("levels", None)
    del student
    metrics_q: dict[str, Any] | None = None
    verdict = None
    if cfg.quantize.int8:
        student_q = LocalStudent.load(art, quantize="int8", site=site)
        samples_q = run_student(student_q, site, calls, desc="evaluate int8", **common)
        _fail_if_systematic(samples_q, "int8")
        metrics_q = score(site, samples_q, **judged)
        verdict = quantization_verdict(metrics["validity"], metrics_q["validity"], cfg.quantize.max_validity_drop)
        served_fp32 = False
        if not is_level_site(site):
            served = _int8_or_fp32(art, samples, samples_q, cfg.quantize.max_validity_drop)
            metrics_q["same_answer_as_fp32"] = served["same_answer_as_fp32"]
            metrics["served_precision"] = served["precision"]
            served_fp32 = served["precision"] == "fp32"
        if served_fp32:
            verdict = None  # the fp32 model is what will be served: its own numbers decide
        elif verdict.ok and "agreement" in metrics and "agreement" in metrics_q:
            verdict = quantization_verdict(metrics["agreement"]["rate"], metrics_q["agreement"]["rate"],
                                           cfg.quantize.max_validity_drop, measure="agreement")
    metrics_g, verdict_g = _evaluate_gguf(site, art, calls, teacher, training, common), None
    if metrics_g is not None:
        verdict_g = quantization_verdict(metrics["validity"], metrics_g["validity"], cfg.quantize.max_validity_drop,
                                         label="gguf q8_0")
        if verdict is None or (verdict.ok and not verdict_g.ok):
            verdict = verdict_g  # the served artefact must be as good as the model it came from
    if is_level_site(site):
        from generator.evaluate.metrics import controllability

        c = controllability(teacher, [spec_from_args(a) for a in calls])
        metrics["teacher"] = {"controllability": {k: p.rate for k, p in c.fields.items()} | {"joint": c.joint.rate},
                              "diversity": metrics.get("teacher_diversity")}
    result = decide(metrics, g, current=current, quantization_ok=verdict.ok if verdict else None,
                    quantization_reason=verdict.reason() if verdict else "", likeness=likeness)
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({"args": s.args, "valid": s.valid, "failures": s.failures, "agree": s.agree,
                    "disagree": s.disagree, "result": s.result, "teacher": t, "latency_ms": s.latency_ms,
                    "tokens": s.tokens, "text": s.text}) + "\n" for s, t in zip(samples, teacher)))
    return {"metrics": metrics, "int8_metrics": metrics_q, "gguf_metrics": metrics_g,
            "gguf_quantization": verdict_g.to_dict() if verdict_g is not None else None,
            "quantization": verdict.to_dict() if verdict else None,
            "gates": result.to_dict(), "likeness": likeness, "compared_with": (current or {}).get("version")}


def _int8_or_fp32(art: Path, fp32: list[Any], int8: list[Any], max_drop: float) -> dict[str, Any]:
    """Serve a generic student in int8 only if int8 gives the same answers as fp32 on the held-out calls.

    Both are constrained to the schema, so validity hides what int8 costs:
    SmolLM2's copied names came back changed for 4 of 12 held-out calls in
    int8 and none in fp32 (docs/benchmarks.md).  When more than ``max_drop``
    of the answers differ, ``student.json`` says ``"int8": false`` and the
    runtime serves fp32 even when asked for int8.
    """
    same = sum(a.result == b.result for a, b in zip(fp32, int8)) / max(1, len(fp32))
    precision = "int8" if same >= 1.0 - max_drop - 1e-9 else "fp32"
    meta_path = art / "student.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["int8"] = precision == "int8"
    meta_path.write_text(json.dumps(meta))
    if precision == "fp32":
        log.warning("int8 changed %.0f %% of the held-out answers: this student is served in fp32", 100 * (1 - same))
    return {"same_answer_as_fp32": same, "precision": precision}


def _fail_if_systematic(samples: list[Any], label: str) -> None:
    """Raise when every held-out sample crashed: a broken pipeline, not a weak student.

    A student that answers badly scores low and is not promoted; one whose
    every call raises (a tokenizer that cannot encode the prompt, a missing
    file) measured nothing, and must not be scored 0 and passed on.
    """
    crashed = [s for s in samples if any(str(f).startswith("error.") for f in s.failures)]
    if samples and len(crashed) == len(samples):
        kinds = sorted({f for s in crashed for f in s.failures if str(f).startswith("error.")})
        example = crashed[0].text or "(no message)"
        raise TrainerError(f"evaluation ({label}) failed systematically: all {len(samples)} held-out calls raised "
                           f"{', '.join(k.removeprefix('error.') for k in kinds)}; first: {example[:300]}")


def _evaluate_gguf(site: str, art: Path, calls: list[Any], teacher: list[Any], training: list[Any],
                   common: dict[str, Any]) -> dict[str, Any] | None:
    """Held-out metrics of the GGUF q8_0 artefact as the game serves it (a worker process).

    Only for the level site, and only where a GGUF runtime is installed: that
    is when ``generator.backends.student`` serves this file instead of torch.
    """
    from generator.local.gguf_worker import GGUF_ARTEFACT, GGUFWorker, runtime_available

    path = art / GGUF_ARTEFACT
    if not is_level_site(site) or not path.is_file():
        return None
    from trainer.gates import run_student, score

    if not runtime_available():
        log.info("no GGUF runtime installed: %s is not evaluated (torch int8 serves it)", path.name)
        return None
    with GGUFWorker(path, site=site) as worker:
        samples = run_student(worker, site, calls, desc="evaluate gguf q8_0", **common)
    return score(site, samples, teacher_results=teacher, training_results=training)


def _stage_register(site: str, cfg: PipelineConfig, report: RunReport, registry: Registry, promote: bool) -> dict[str, Any]:
    st = report.stages
    ev = st["evaluate"]
    passed = bool(ev["gates"]["passed"])
    current = registry.current(site)
    metrics = dict(ev["metrics"])
    metrics["quantized_validity"] = (ev.get("int8_metrics") or {}).get("validity")
    metrics["int8"] = ev.get("int8_metrics")
    metrics["gguf_validity"] = (ev.get("gguf_metrics") or {}).get("validity")
    metrics["gates"] = ev["gates"]
    metrics["train_seconds"] = st["train"].get("train_seconds")
    metrics["tokens_per_s"] = st["train"].get("tokens_per_s")
    metrics["eval_loss"] = st["train"].get("eval_loss")
    metrics["spec_ranges"] = st["dataset"].get("spec_ranges")
    manifest = {
        "base": cfg.train.base if cfg.train.base in ("micro", "tinyllama") else _base_label(cfg.train.base),
        "parent": current.version if current else None,
        "preset": cfg.name,
        "code_revision": code_revision(),
        "dataset_hash": st["dataset"]["hash"],
        "dataset_size": st["dataset"]["train_examples"],
        "heldout_size": st["dataset"]["heldout_examples"],
        "metrics": metrics,
        "state": "passed" if passed else "rejected",
        "notes": f"run {report.run_dir.name}; model preset {cfg.train.model_preset}"
                 + ("; qlora" if cfg.train.qlora else ""),
    }
    # A run that crashed after registering must not register twice when resumed.
    tag = f"run {report.run_dir.name};"
    existing = next((m for m in registry.versions(site) if m.notes.startswith(tag)), None)
    version = existing.version if existing else registry.add_version(site, report.run_dir / "artefact", manifest)
    promoted = False
    if passed and promote:
        registry.promote(site, version)
        promoted = True
    why = "promoted" if promoted else ("gates passed; not promoted (--no-promote)" if passed
                                       else "not promoted: " + "; ".join(ev["gates"]["reasons"]))
    return {"version": version, "promoted": promoted, "state": manifest["state"], "why": why,
            "replaces": manifest["parent"]}


def _base_label(base: str) -> str:
    """A base folder as the registry lists it: its name, or ``<run>/artefact`` for an earlier run's student."""
    path = Path(base)
    return f"{path.parent.name}/{path.name}" if path.name == "artefact" and path.parent.name else path.name


# ------------------------------------------------------------------ report


def _likeness_headline(likeness: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per generator (student and controls): valid, pattern JSD, structure W1, NLL over all specs."""
    if not likeness:
        return None
    keys = ("valid", "pattern_jsd", "structure_w1", "nll")
    out: dict[str, Any] = {name: {k: e.get(k) for k in keys} for name, e in likeness["generators"].items()}
    if likeness.get("noise"):
        out["teacher_noise"] = {k: likeness["noise"].get(k) for k in keys if k in likeness["noise"]}
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def _markdown(report: RunReport) -> str:
    d = report.to_dict()
    lines = [f"# Training run {report.run_dir.name}", "",
             f"- call site: `{report.site}`", f"- preset: `{report.config.name}`, base `{d['base']}`",
             f"- version: {d['version'] or '-'} ({(d.get('registry') or {}).get('why', '')})", "",
             "| metric | value |", "|---|---|"]
    for key in HEADLINE[3:]:
        lines.append(f"| {key} | {_fmt(d.get(key))} |")
    agreement = d.get("agreement_fields") or {}
    if agreement:
        judge = d.get("judge") or {}
        lines += ["", f"## Agreement with the teacher (judge `{judge.get('mode')}`: {judge.get('source', '')})", "",
                  "| field | agrees | 95 % lower | similarity |", "|---|---|---|---|"]
        for path, f in sorted(agreement.items(), key=lambda kv: kv[1]["rate"]):
            lines.append(f"| `{path}` | {f['agree']}/{f['n']} ({f['rate']:.2f}) | {f['lower95']:.3f} "
                         f"| {_fmt(f.get('similarity'))} |")
    fields = d.get("controllability_fields") or {}
    if fields:
        lines += ["", "Controllability per field: " + ", ".join(f"{k} {_fmt(v)}" for k, v in fields.items())]
    teacher = ((report.stages.get("evaluate") or {}).get("metrics") or {}).get("teacher") or {}
    if teacher.get("controllability"):
        lines += ["", "Teacher on the same specs: " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in teacher["controllability"].items()) + f", diversity {_fmt(teacher.get('diversity'))}"]
    likeness = (report.stages.get("evaluate") or {}).get("likeness")
    if likeness:
        from generator.evaluate.likeness import likeness_markdown

        lines += ["", "## Likeness to the teacher, beside the controls", "",
                  "One masked first candidate per held-out spec from the student and from each control "
                  "(untrained weights, all-equal logits, left+up Markov counts), all through the same "
                  "decoding. Lower is better for pattern_jsd, structure_w1 and nll; valid is what the "
                  "decoding rules give each of them.", "", likeness_markdown(likeness)]
    gates = d.get("gates") or {}
    if gates:
        lines += ["", "## Gates", ""] + [f"- {'pass' if c['ok'] else 'FAIL'}: {c['why']}" for c in gates.get("checks", [])]
    ds = d.get("dataset") or {}
    if ds:
        lines += ["", "## Dataset", "", f"hash `{ds.get('hash')}`; curation: {ds.get('stats')}"]
    if d.get("artefacts"):
        lines += ["", "## Artefacts", ""] + [f"- {k}: {v / 1e6:.2f} MB" for k, v in d["artefacts"].items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ run

_LAUNCH_POINTER: Final = ".launch-run"


def _distributed() -> Any:
    """accelerate's process state under a multi-process ``accelerate launch``; None otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Without GPUs, processes talk over gloo (MULTI_CPU); the loop's Accelerator reuses this state.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes <= 1:
        raise TrainerError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but accelerate sees one process; "
            "launch with `accelerate launch --multi_gpu --num_processes N -m generator.train ...`"
        )
    return state


def _load_run(run_dir: Path) -> tuple[str, PipelineConfig]:
    info = json.loads((run_dir / "run.json").read_text())
    return info["site"], from_dict(PipelineConfig, info["config"])


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)



def run(
    cfg: PipelineConfig,
    *,
    site: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | bool = False,
    promote: bool = True,
    progress: bool = False,
) -> RunReport:
    """Run (or resume) the pipeline for one call site; returns the report (also written to the run folder).

    ``resume=True`` continues the newest unfinished run (of ``site`` if given),
    a path continues that run; its saved config is used, not ``cfg``.
    """
    from generator.paths import data_dir as resolve_data_dir
    from generator.store import Store

    root = resolve_data_dir(data_dir)
    registry = Registry(root / "models")
    if cfg.train.base != "micro" and not resume:
        from trainer.model import resolve_base

        resolve_base(cfg.train.base, data_dir=root)  # missing weights: say so before any work is done
    run_dir: Path | None = None
    if resume:
        run_dir = Path(resume) if not isinstance(resume, bool) else latest_unfinished_run(root / "runs", site)
        if run_dir is None:
            raise TrainerError(f"--resume: no unfinished run in {root / 'runs'}; start a new one without --resume")
        if not (run_dir / "run.json").is_file():
            raise TrainerError(f"--resume: {run_dir} is not a run folder (no run.json)")
        site, cfg = _load_run(run_dir)
        log.info("resuming %s", run_dir)
        if cfg.train.base != "micro":
            from trainer.model import resolve_base

            resolve_base(cfg.train.base, data_dir=root)

    dist = _distributed()
    if dist is not None and not dist.is_main_process:
        # `accelerate launch`: the main process curates the data and names the run; the others join it.
        dist.wait_for_everyone()
        if run_dir is None:
            run_dir = Path((root / "runs" / _LAUNCH_POINTER).read_text().strip())
            site, cfg = _load_run(run_dir)
    if run_dir is None:
        with Store.open(root / "forge.db") as store:
            site = choose_site(store, site)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = root / "runs" / f"{stamp}-{_slug(site)}"
        n = 1
        while run_dir.exists():
            n += 1
            run_dir = root / "runs" / f"{stamp}-{_slug(site)}-{n}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"site": site, "config": cfg.to_dict(),
                                                      "started": time.time()}, indent=2))
    assert site is not None
    stages = _Stages(run_dir)
    report = RunReport(site=site, run_dir=run_dir, config=cfg)

    def stage(name: str, fn: Any) -> dict[str, Any]:
        done = stages.done(name)
        if done is not None:
            log.info("stage %s: already done", name)
            report.stages[name] = done
            return done
        log.info("stage %s ...", name)
        started = time.monotonic()
        result = fn()
        result["seconds"] = round(time.monotonic() - started, 3)
        report.stages[name] = stages.finish(name, result)
        return result

    if dist is None or dist.is_main_process:
        def dataset_stage() -> dict[str, Any]:
            with Store.open(root / "forge.db") as store:
                return _stage_dataset(store, site, cfg, run_dir)

        stage("dataset", dataset_stage)
        if dist is not None:
            _atomic_text(root / "runs" / _LAUNCH_POINTER, str(run_dir))
            dist.wait_for_everyone()
    ds = load_exported(run_dir / "dataset")
    if dist is not None and not dist.is_main_process:
        if stages.done("train") is None:  # a DDP replica; the main process records the stage
            from trainer import loop

            loop.train(cfg.train, *_training_texts(ds, cfg), run_dir / "model", progress=False)
        dist.wait_for_everyone()
        return report
    stage("train", lambda: _stage_train(ds, cfg, run_dir, progress))
    if dist is not None:
        dist.wait_for_everyone()
    stage("quantize", lambda: _stage_quantize(ds, run_dir, cfg))
    stage("export", lambda: _stage_export(cfg, run_dir))
    current = registry.current(site)
    current_metrics = ({**current.metrics, "version": current.version} if current else None)
    stage("evaluate", lambda: _stage_evaluate(site, ds, cfg, run_dir, current_metrics, progress, root))
    try:
        stage("register", lambda: _stage_register(site, cfg, report, registry, promote))
    except RegistryError as exc:
        raise TrainerError(f"registering the trained model failed: {exc}") from exc
    (run_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (run_dir / "report.md").write_text(_markdown(report))
    return report
