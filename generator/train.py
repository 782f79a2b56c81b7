"""``python -m generator.train``: turn recorded calls into a local student model.

    dataset -> fine-tune -> merge + int8 -> GGUF -> evaluate vs teacher -> registry -> promote if the gates pass

Examples::

    python -m generator.train --bootstrap 2000           # procedural-teacher data, no API key needed
    python -m generator.train --preset quick --json      # train the level site's student
    python -m generator.train --base tinyllama --qlora   # LoRA on local TinyLlama weights, 4-bit base
    python -m generator.train --if-needed                # between sessions: only when there is enough new data
    python -m generator.train --export-dataset out/ds    # JSONL that HF `datasets` loads

The game launches background training with :func:`launch_background`.
This is the only module outside ``trainer/`` that imports it, lazily, so the
game never pays for torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError

log = logging.getLogger(__name__)

_TRAIN_HINT = "the trainer needs the training extras: pip install 'dungeon-forge[train]'"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m generator.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Presets: tiny-test, quick, standard (trainer/presets/*.yaml). See docs/training.md.")
    p.add_argument("--site", help="call-site id to train (default: the level site, else the site with most data)")
    p.add_argument("--base", help="micro | tinyllama | PATH to a local Hugging Face causal LM (default: preset's)")
    p.add_argument("--model-preset", help="micro shape: micro-1m, micro-5m, micro-30m (default: preset's)")
    p.add_argument("--qlora", action="store_true", help="4-bit nf4 base with LoRA adapters (bitsandbytes)")
    p.add_argument("--preset", default="quick", help="training preset name or YAML path (default: quick)")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides the preset)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any preset value, e.g. --set train.lr=0.001 (repeatable)")
    p.add_argument("--if-needed", action="store_true",
                   help="train only if the site has enough new valid data and the machine is idle (low priority)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue the newest unfinished run (or RUN_DIR) after its last finished stage")
    p.add_argument("--no-promote", action="store_true", help="register the version but never promote it")
    p.add_argument("--export-dataset", metavar="DIR", help="write the curated dataset as JSONL to DIR and stop")
    p.add_argument("--bootstrap", type=int, metavar="N",
                   help="first generate N procedural-teacher levels through the facade (captured into the store)")
    p.add_argument("--seed", type=int, default=0, help="seed for --bootstrap (default 0)")
    p.add_argument("--data-dir", help="data directory (default: $FORGE_HOME or the platform data dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _config(args: argparse.Namespace) -> Any:
    from trainer.config import load_preset

    overrides = list(args.set)
    if args.base:
        overrides.append(f"train.base={args.base}")
    if args.model_preset:
        overrides.append(f"train.model_preset={args.model_preset}")
    if args.qlora:
        overrides.append("train.qlora=true")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    return load_preset(args.preset, overrides=overrides)


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(obj, default=str))
    else:
        print(text)


def _quiet_transformers_bars() -> None:
    """No per-shard "Writing model shards" / "Loading weights" bars: the trainer shows its own progress."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the train extra is missing; the import above already said so
        return
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if "torch" not in sys.modules:
        # OpenMP reads its wait policy once, when torch loads it.  Spinning threads made training
        # about 4x slower on a busy machine (docs/training.md); an explicit setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING if (args.json or args.quiet) else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    progress = not (args.json or args.quiet)
    try:
        try:
            from trainer import pipeline
            from trainer.dataset import bootstrap, build_dataset
            from trainer.errors import TrainerError
        except ImportError as exc:
            raise GeneratorError(f"{_TRAIN_HINT} ({exc})") from None
        _quiet_transformers_bars()
        try:
            cfg = _config(args)
            out: dict[str, Any] = {}
            if args.bootstrap:
                out["bootstrap"] = bootstrap(args.bootstrap, data_dir=args.data_dir, cfg=cfg.dataset,
                                             seed=args.seed, progress=progress)
                if not args.json:
                    print(f"bootstrap: {out['bootstrap']['levels']} procedural-teacher levels recorded")
            if args.export_dataset:
                from generator.paths import db_path
                from generator.store import Store

                with Store.open(db_path(args.data_dir)) as store:
                    site = pipeline.choose_site(store, args.site)
                    ds = build_dataset(store, site, cfg.dataset)
                paths = ds.export(args.export_dataset)
                out.update({"site": site, "hash": ds.hash, "train_examples": len(ds.train),
                            "heldout_examples": len(ds.eval), "files": {k: str(v) for k, v in paths.items()}})
                _emit(args, out, f"{site}: {len(ds.train)} train / {len(ds.eval)} held-out examples "
                                 f"written to {args.export_dataset}")
                return 0
            if args.if_needed:
                from generator.paths import data_dir, db_path
                from generator.registry import Registry
                from generator.store import Store

                with Store.open(db_path(args.data_dir)) as store:
                    try:
                        site = pipeline.choose_site(store, args.site)
                    except TrainerError as exc:
                        _emit(args, {**out, "trained": False, "reason": str(exc)}, f"not training: {exc}")
                        return 0
                    ok, why = pipeline.needs_training(store, Registry(data_dir(args.data_dir) / "models"), site, cfg)
                if not ok:
                    _emit(args, {**out, "site": site, "trained": False, "reason": why}, f"not training {site}: {why}")
                    return 0
                try:
                    os.nice(cfg.schedule.nice)
                except OSError:
                    pass
            report = pipeline.run(cfg, site=args.site, data_dir=args.data_dir, resume=args.resume,
                                  promote=not args.no_promote, progress=progress)
        except TrainerError as exc:
            raise GeneratorError(str(exc)) from None
    except (GeneratorError, OSError) as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; `python -m generator.train --resume` continues from the last checkpoint", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # `accelerate launch`: only the main process reports
    result = {**out, **report.to_dict(), "trained": True}
    if args.json:
        print(json.dumps(result, default=str))
    else:
        h = report.headline()
        print(f"{h['site']}: version {h['version']} ({'promoted' if h['promoted'] else 'not promoted'})")
        for key in ("validity", "validity_lower95", "agreement", "agreement_lower95", "weakest_field",
                    "quantized_validity", "controllability", "diversity", "novelty", "train_seconds", "tokens_per_s"):
            if key.startswith(("agreement", "weakest")) and h.get("agreement") is None:
                continue  # a site judged by validity alone
            v = h.get(key)
            print(f"  {key:<18} {v:.3f}" if isinstance(v, float) else f"  {key:<18} {v}")
        why = (report.stages.get("register") or {}).get("why")
        if why:
            print(f"  {why}")
        print(f"  report: {report.run_dir / 'report.md'}")
    return 0


def launch_background(data_dir: str | os.PathLike[str] | None = None, *, site: str | None = None,
                      preset: str = "quick", log_path: str | os.PathLike[str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m generator.train --if-needed`` detached, at low priority, and return at once.

    The game calls this between sessions; the child decides whether there is
    enough new data and whether the machine is idle.  Output goes to
    ``log_path`` (default ``<data dir>/runs/background.log``).
    """
    from generator.paths import data_dir as resolve

    root = resolve(data_dir)
    log_file = Path(log_path) if log_path else root / "runs" / "background.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "generator.train", "--if-needed", "--quiet", "--json", "--preset", preset,
           "--data-dir", str(root)]
    if site:
        cmd += ["--site", site]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with open(log_file, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=(lambda: os.nice(10)) if os.name == "posix" else None)


if __name__ == "__main__":
    sys.exit(main())
