"""A generic call site learnt from SmolLM2-135M: agreement with the teacher, training time, served latency.

The site is of the issue's shape: a typed object and a string in (a monster
with a name and a level, a town); out a typed object with a title built from
the inputs, an integer computed from them and an enum band.  The "teacher"
is the rule itself, recorded into a fresh store as captured calls (with the
output schema byllm would send), so the benchmark needs no API key:

    title  = "Slay <name> of <town>"     reward = 10 * level + 5
    band   = low (level 1-3) | mid (4-6) | high (7-9)

Names and towns are drawn from syllables, so held-out calls name monsters
and towns the training set never saw.  ``python -m generator.train``'s
pipeline then trains a LoRA student on the base (preset ``smollm2``), and
the held-out calls are answered by:

* ``student``: the registered version as the site serves it: asked for
  int8, schema-constrained, greedy (int8 only where the trainer found it
  answering as fp32 does, else fp32);
* ``student_fp32``: the same version in fp32;
* ``untrained``: the same base without the adapters, through the same
  prompt and constrained decoding (the control);
* ``count``: each field's most common training value (the floor).

Agreement is exact per field and for the whole answer; latency is the
served student's wall time per call (p50/p95), one torch thread.

    python -m benchmarks.generic_student --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

SITE = "quests.jac:make_quest#5e1f0a2c"
SCHEMA = {"type": "object", "title": "Quest", "properties": {
    "title": {"type": "string", "description": "Quest title naming the monster and the town"},
    "reward": {"type": "integer", "description": "Gold paid"},
    "band": {"type": "string", "enum": ["low", "mid", "high"], "description": "Reward band"}},
    "required": ["title", "reward", "band"], "additionalProperties": False}
_SYL = ["gor", "ak", "ys", "ol", "de", "mar", "th", "ul", "ven", "ka", "ri", "bel", "dor", "in", "zu", "rah", "ash",
        "vale", "fen", "mo", "ra", "ka", "lin", "tor", "ba", "sel", "ith", "um", "gra", "eth"]


def _name(rng: np.random.Generator, parts: int) -> str:
    return "".join(_SYL[int(i)] for i in rng.integers(0, len(_SYL), size=parts)).capitalize()


def teacher(args: dict[str, Any]) -> dict[str, Any]:
    level = int(args["monster"]["level"])
    return {"title": f"Slay {args['monster']['name']} of {args['town']}", "reward": 10 * level + 5,
            "band": "low" if level <= 3 else "mid" if level <= 6 else "high"}


def calls(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"monster": {"name": _name(rng, int(rng.integers(2, 4))), "level": int(rng.integers(1, 10))},
             "town": _name(rng, 2)} for _ in range(n)]


def _agreement(answers: list[dict[str, Any] | None], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole-answer and per-field agreement as the gates and routing judge it (``generator.evaluate.agreement``)."""
    from generator.evaluate.agreement import compare_many

    stats = compare_many(answers, truth, schema=SCHEMA)
    return {"whole": round(stats.rate, 3), "lower95": round(stats.lower95, 3),
            "fields": {k: round(f.rate, 3) for k, f in stats.fields.items()}, "n": stats.n}


def _answers(student: Any, heldout: list[dict[str, Any]]) -> tuple[list[Any], list[float], list[int]]:
    out, ms, tokens = [], [], []
    student.generate(heldout[0])  # warm-up: the first call pays one-off allocations
    for args in heldout:
        res = student.generate(args)
        out.append(res.result)
        ms.append(res.latency_ms)
        tokens.append(res.tokens)
    return out, ms, tokens


def run(args: dict[str, Any]) -> dict[str, Any]:
    import torch

    from generator.local.bases import ensure_base
    from generator.local.student import LocalStudent
    from generator.store.records import CallRecord
    from generator.local.registry import Registry
    from generator.store import Store
    from trainer import pipeline
    from trainer.config import load_preset

    torch.set_num_threads(args["threads"])
    home = Path(args["data_dir"] or tempfile.mkdtemp(prefix="forge-generic-"))
    wrapped = {"type": "json_schema", "json_schema": {"name": "Quest", "schema": SCHEMA, "strict": True}}
    train_calls = calls(args["examples"], args["seed"])
    with Store.open(home / "forge.db") as store:
        for a in train_calls:
            store.record_call(CallRecord(site=SITE, backend="llm", args=a, result=teacher(a), valid=True,
                                         output_schema=wrapped))
    overrides = [f"train.steps={args['steps']}", f"train.max_minutes={args['max_minutes']}",
                 f"gates.eval_specs={args['heldout']}", "dataset.heldout_fraction=0.05", *args.get("set", [])]
    started = time.monotonic()
    report = pipeline.run(load_preset("smollm2", overrides=overrides), site=SITE, data_dir=home)
    pipeline_s = time.monotonic() - started
    head = report.headline()
    reg = Registry(home / "models")
    vdir = reg.model_dir(SITE, head["version"]) if head["version"] else None
    heldout = calls(args["heldout"], args["seed"] + 1)  # fresh names and towns
    truth = [teacher(a) for a in heldout]
    student = LocalStudent.load(vdir, quantize="int8", site=SITE, threads=args["threads"])
    served_precision = student.quantize or "fp32"
    s_answers, s_ms, s_tokens = _answers(student, heldout)
    del student
    if served_precision == "fp32":
        f_answers, f_ms = s_answers, s_ms
    else:
        fp32 = LocalStudent.load(vdir, quantize=None, site=SITE, threads=args["threads"])
        f_answers, f_ms, _ = _answers(fp32, heldout)
        del fp32
    base = ensure_base("smollm2-135m", home)
    control_dir = Path(tempfile.mkdtemp(prefix="untrained-", dir=home))
    for f in base.iterdir():
        if f.is_file():
            os.symlink(f, control_dir / f.name)
    (control_dir / "output_schema.json").write_text(json.dumps(wrapped))
    control = LocalStudent.load(control_dir, quantize="int8", site=SITE, threads=args["threads"])
    c_answers, c_ms, _ = _answers(control, heldout[: args["control_calls"]])
    del control
    shutil.rmtree(control_dir, ignore_errors=True)
    train_truth = [teacher(a) for a in train_calls]
    floor = {k: Counter(json.dumps(t[k]) for t in train_truth).most_common(1)[0][0] for k in SCHEMA["properties"]}
    count_answers = [{k: json.loads(v) for k, v in floor.items()}] * len(heldout)
    version_bytes = sum(p.stat().st_size for p in vdir.rglob("*") if p.is_file()) if vdir else 0
    run_bytes = sum(p.stat().st_size for p in report.run_dir.rglob("*") if p.is_file())
    tr = report.stages.get("train", {})
    return {
        "benchmark": "generic_student",
        "site": SITE,
        "base": "smollm2-135m",
        "train_examples": head["train_examples"],
        "steps": tr.get("step"),
        "train_seconds": round(tr.get("train_seconds") or 0, 1),
        "train_tokens_per_s": round(tr.get("tokens_per_s") or 0, 1),
        "pipeline_seconds": round(pipeline_s, 1),
        "promoted": head["promoted"],
        "overrides": args.get("set", []),
        "agreement": {"student": _agreement(s_answers, truth),
                      "student_fp32": _agreement(f_answers, truth),
                      "untrained": _agreement(c_answers, truth[: len(c_answers)]),
                      "count": _agreement(count_answers, truth)},
        "served": {"p50_ms": round(statistics.median(s_ms), 1),
                   "p95_ms": round(float(np.percentile(s_ms, 95)), 1),
                   "tokens_per_call": round(float(np.mean(s_tokens)), 1),
                   "fp32_p50_ms": round(statistics.median(f_ms), 1),
                   "untrained_p50_ms": round(statistics.median(c_ms), 1),
                   "runtime": f"torch {served_precision}, llguidance",
                   "threads": args["threads"]},
        "disk_mb": {"version": round(version_bytes / 1e6, 1), "run_folder": round(run_bytes / 1e6, 1)},
        "examples": [{"args": a, "teacher": t, "student": s} for a, t, s in list(zip(heldout, truth, s_answers))[:3]],
        "seed": args["seed"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generic_student", description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=240, help="captured teacher calls (default 240)")
    p.add_argument("--heldout", type=int, default=30, help="fresh held-out calls judged (default 30)")
    p.add_argument("--control-calls", type=int, default=10, help="held-out calls for the untrained control (default 10)")
    p.add_argument("--steps", type=int, default=160, help="optimizer steps (default 160, the preset's)")
    p.add_argument("--max-minutes", type=float, default=9.0, help="training time bound (default 9)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the smollm2 preset, e.g. --set train.lora_layers=10 (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="data directory to use (default: a new temporary one); the base is converted "
                                      "into it unless already there")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if min(a.examples, a.heldout, a.control_calls, a.steps, a.threads) < 1 or not a.max_minutes > 0:
        p.error("--examples, --heldout, --control-calls, --steps and --threads must be >= 1 and --max-minutes > 0")
    if a.control_calls > a.heldout:
        p.error(f"--control-calls ({a.control_calls}) cannot exceed --heldout ({a.heldout})")
    from generator.guards.output import json_stdout

    with json_stdout(a.json) as emit:  # what libraries print goes to stderr
        out = run({"examples": a.examples, "heldout": a.heldout, "control_calls": a.control_calls, "steps": a.steps,
                   "max_minutes": a.max_minutes, "threads": a.threads, "seed": a.seed, "data_dir": a.data_dir,
                   "set": a.set})
        if a.json:
            emit(out)
    if not a.json:
        ag = out["agreement"]
        print(f"student   whole {ag['student']['whole']:.2f}  {ag['student']['fields']}")
        print(f"untrained whole {ag['untrained']['whole']:.2f}  {ag['untrained']['fields']}")
        print(f"count     whole {ag['count']['whole']:.2f}  {ag['count']['fields']}")
        print(f"training {out['train_seconds']} s at {out['train_tokens_per_s']} tok/s; served p50 "
              f"{out['served']['p50_ms']} ms/call; version {out['disk_mb']['version']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
