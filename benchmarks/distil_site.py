"""A generic call site distilled end to end, as a user does it: capture -> train -> gates -> shadow -> local.

The program is ``docs/examples/bounty_board.jac`` (a monster's name, level
and heads and a town in; out a title built from them, ``reward = 40·level +
25·heads`` and a band by level), run with ``jac run`` against the bounty
teacher on 127.0.0.1 (``tests/fakes/bounty_teacher.py``, so a source
checkout is needed).  Every step is the command a user types, in a fresh
data directory:

1. capture: ``BOUNTY_CALLS=400 jac run`` (seed 0);
2. train: ``python -m generator.train --site SITE --base smollm2-135m`` (the
   ``smollm2`` preset), then once more with ``--steps 5`` (an undertrained
   student that must be registered and refused);
3. shadow: ``jac run`` with 40 fresh calls per run (seeds 101, 102, ...)
   until the site is ``local`` or ``--max-runs`` is reached;
4. local: one more run, whose printed answers are compared with the rule.

Controls on the held-out calls the trainer's gate judged (its
``samples.jsonl``): the most common training value per field, and the base
without adapters through the same constrained decoding (the first
``--control-calls`` of them).  Prints one JSON object with
``--json``.  Takes about 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "docs" / "examples" / "bounty_board.jac"


def _load_bounty() -> Any:
    from benchmarks import load_fake

    return load_fake("bounty_teacher", "distil_site")


def _python(*args: str, env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def _jac(env: dict[str, str], calls: int, seed: int) -> tuple[subprocess.CompletedProcess[str], float]:
    jac = Path(sys.executable).with_name("jac")
    started = time.monotonic()
    proc = subprocess.run([str(jac), "run", str(PROGRAM)], env={**env, "BOUNTY_CALLS": str(calls),
                          "BOUNTY_SEED": str(seed)}, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"jac run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc, time.monotonic() - started


def _site_row(env: dict[str, str], site: str) -> dict[str, Any]:
    proc, _ = _python("-m", "generator.sites", "--json", env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"generator.sites failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = [s for s in json.loads(proc.stdout)["sites"] if s["site"] == site]
    return rows[0] if rows else {}


def _served_locally(home: Path, site: str) -> int:
    """Calls the student answered for the program so far (not its shadow answers)."""
    from generator.store import Store

    with Store.open(home / "forge.db", configured=False) as store:
        return sum(1 for c in store.iter_calls(site) if c.record.backend == "student" and c.record.served)


def _train(env: dict[str, str], site: str, *extra: str) -> dict[str, Any]:
    proc, seconds = _python("-m", "generator.train", "--site", site, "--base", "smollm2-135m", "--json", *extra,
                            env=env, timeout=3600)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = {}
    if proc.returncode != 0 or not out.get("trained"):
        why = out.get("error") or out.get("reason") or proc.stderr[-2000:]
        raise RuntimeError(f"generator.train {' '.join(extra)} did not train ({proc.returncode}): {why}")
    keep = ("version", "promoted", "train_examples", "heldout_examples", "agreement", "agreement_lower95",
            "agreement_fields", "weakest_field", "train_seconds", "tokens_per_s")
    return {**{k: out.get(k) for k in keep}, "steps": (out.get("train") or {}).get("step"),
            "why": (out.get("registry") or {}).get("why"), "command_seconds": round(seconds, 1),
            "run_dir": out.get("run_dir")}


def _controls(run_dir: Path, site: str, schema: dict[str, Any], home: Path, n_base: int) -> dict[str, Any]:
    """The count baseline and the untrained base on the calls the trainer's gate judged (``samples.jsonl``)."""
    from generator.evaluate.agreement import compare_many
    from generator.local.bases import ensure_base
    from generator.local.student import LocalStudent

    def rows(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    train = [json.loads(r["result_json"]) for r in rows(run_dir / "dataset" / "train.jsonl")]
    judged = rows(run_dir / "samples.jsonl")  # the gate's held-out calls, with the teacher's answers
    truth = [r["teacher"] for r in judged]
    common = {k: json.loads(Counter(json.dumps(t[k]) for t in train).most_common(1)[0][0]) for k in truth[0]}
    count = compare_many([dict(common)] * len(truth), truth, schema=schema)
    if n_base == 0:
        return {"count": count.to_dict(), "untrained_base": None}
    control_dir = Path(tempfile.mkdtemp(prefix="untrained-", dir=home))
    try:
        for f in ensure_base("smollm2-135m", home).iterdir():
            if f.is_file():
                os.symlink(f, control_dir / f.name)
        (control_dir / "output_schema.json").write_text(json.dumps(schema))
        base = LocalStudent.load(control_dir, quantize=None, site=site)
        answers = [base.generate(r["args"]).result for r in judged[:n_base]]
        untrained = compare_many(answers, truth[:n_base], schema=schema)
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)
    return {"count": count.to_dict(), "untrained_base": untrained.to_dict()}


def run(a: argparse.Namespace) -> dict[str, Any]:
    bounty = _load_bounty()
    site = bounty.site()
    home = Path(a.data_dir or tempfile.mkdtemp(prefix="forge-distil-"))
    if home.exists() and any(home.iterdir()):
        raise SystemExit(f"--data-dir {home} is not empty: the benchmark starts from a fresh data directory")
    home.mkdir(parents=True, exist_ok=True)
    (home / "forge.toml").write_text(f"[routing]\nshadow_exit_wait_s = {a.exit_wait}\n")
    out: dict[str, Any] = {"benchmark": "distil_site", "site": site, "data_dir": str(home), "seed": a.seed}
    with bounty.server() as teacher:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FORGE_")}  # not the user's store or settings
        env = {**clean, "OPENAI_BASE_URL": teacher.url, "OPENAI_API_KEY": "sk-forge-distil",
               "BYLLM_DEFAULT_MODEL": "gpt-4o-mini", "FORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
        _, seconds = _jac(env, a.capture, a.seed)
        out["capture"] = {"calls": a.capture, "seconds": round(seconds, 1)}
        out["trained"] = _train(env, site, *a.train_args)
        out["undertrained"] = _train(env, site, "--steps", "5")
        run_dir = Path(out["trained"]["run_dir"])
        out["controls"] = _controls(run_dir, site, bounty.OUTPUT_SCHEMA, home, a.control_calls)
        runs = []
        before, local_before = _site_row(env, site), _served_locally(home, site)
        for i in range(a.max_runs):
            seed = 101 + i
            proc, seconds = _jac(env, a.calls, seed)
            row, local_after = _site_row(env, site), _served_locally(home, site)
            expected = [bounty.bounty(c["monster"], c["town"]) for c in bounty.calls(a.calls, seed)]
            printed = proc.stdout.splitlines()
            right = sum(p == f"BOUNTY {b['title']} | {b['reward']} | {b['band']}" for p, b in zip(printed, expected))
            runs.append({"seed": seed, "calls": a.calls, "seconds": round(seconds, 1),
                         "state_before": before.get("state"), "state_after": row.get("state"),
                         "served_by": row.get("served_by"), "answers_right": right,
                         "served_locally": local_after - local_before,
                         "agreement": row.get("agreement")})
            if runs[-1]["served_locally"] == a.calls:
                break  # a whole run served by the student: done
            before, local_before = row, local_after  # nothing runs between two program runs
        out["runs"] = runs
        out["teacher_requests"] = len(teacher.requests)
    from generator.store import Store

    with Store.open(home / "forge.db", configured=False) as store:
        recs = [c.record for c in store.iter_calls(site)]
    local = [r.latency_ms for r in recs if r.backend == "student" and r.served]
    shadow = [r.latency_ms for r in recs if r.backend == "student" and not r.served and r.valid is not None]
    llm = [r.latency_ms for r in recs if r.backend == "llm"]
    out["latency_ms_p50"] = {k: (round(statistics.median(v), 1) if v else None)
                             for k, v in (("local", local), ("shadow", shadow), ("teacher_fake", llm))}
    out["reached_local"] = any(r["served_locally"] == r["calls"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distil_site", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="where calls, runs and models go (default: a new temporary folder, kept)")
    p.add_argument("--capture", type=int, default=400, help="teacher calls captured for training (default 400)")
    p.add_argument("--calls", type=int, default=40, help="calls per shadow/local run (default 40)")
    p.add_argument("--max-runs", type=int, default=5, help="program runs after training, at most (default 5)")
    p.add_argument("--exit-wait", type=float, default=120.0,
                   help="[routing] shadow_exit_wait_s written to the data dir's forge.toml (default 120)")
    p.add_argument("--control-calls", type=int, default=10, help="held-out calls for the untrained base (default 10)")
    p.add_argument("--train-arg", dest="train_args", action="append", default=[],
                   help="extra argument for the main generator.train run (repeatable), e.g. --train-arg=--steps=300")
    p.add_argument("--seed", type=int, default=0, help="the capture run's BOUNTY_SEED (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.capture < 40 or a.calls < 1 or a.max_runs < 1 or a.control_calls < 0:
        p.error("--capture must be >= 40 (the preset's minimum), --calls and --max-runs >= 1, --control-calls >= 0")
    from generator.guards.output import json_stdout

    with json_stdout(a.json) as emit:
        out = run(a)
        if a.json:
            emit(out)
    if not a.json:
        t = out["trained"]
        print(f"trained {t['version']}: agreement {t['agreement']} fields "
              f"{ {k: v['rate'] for k, v in (t['agreement_fields'] or {}).items()} } in {t['train_seconds']:.0f} s "
              f"({t['tokens_per_s']:.0f} tok/s), promoted {t['promoted']}")
        print(f"undertrained {out['undertrained']['version']}: promoted {out['undertrained']['promoted']}")
        for r in out["runs"]:
            print(f"run seed {r['seed']}: {r['state_before']} -> {r['state_after']}, right {r['answers_right']}/"
                  f"{r['calls']}, served locally {r['served_locally']}, {r['seconds']} s")
        print(f"reached local: {out['reached_local']}; latency p50 ms {out['latency_ms_p50']}")
    return 0 if out["reached_local"] else 1


if __name__ == "__main__":
    sys.exit(main())
