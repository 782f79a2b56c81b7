"""Training throughput: this trainer against a plain Hugging Face fp32 eager loop, same model and data.

Four variants train the same micro Llama (``trainer.model`` preset, freshly
initialised with the same seed) on the same level texts in the compact grid
form, each in its own process so peak memory is its own:

* ``plain_fp32``: the textbook loop -- shuffled fixed-size batches padded to
  the longest example, attention mask, fp32, AdamW (foreach);
* ``trainer_fp32``: :func:`trainer.loop.train` with bf16 off (length-bucketed
  right-padded batches without an attention mask, fused AdamW);
* ``trainer_bf16``: :func:`trainer.loop.train` as configured by default on a
  CPU that supports it (the same, under bf16 autocast);
* ``trainer_bf16_compile``: the same with ``compile=True`` (each decoder
  layer through ``torch.compile``).

Throughput counts real (non-padding) tokens, so less padding counts as
speed, as it is.  Two figures per variant:

* ``tokens_per_s``: tokens / wall seconds over every step, the first one
  included (for the compiled variant that first step holds the compile,
  ``compile_seconds`` estimates it: first step minus the median step);
* ``steady_cpu_tokens_per_s``: tokens of the steps after the first, per
  second of this process's CPU time, times the torch threads -- what the
  variant would do with the cores to itself.  On a machine shared with
  other jobs wall time swings several-fold between rounds while CPU time
  barely moves, so this is the figure to compare across runs.

Variants run in rounds with the order rotated, and the median round is
reported, so a busy neighbour hurts all sides alike.  Every variant runs
with ``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-wait-policy inherit``: with
OpenMP's default busy-waiting, torch's threads spin while a neighbour holds
the other core, which on the shared 2-core box made both loops 4x slower
and swamped every difference the benchmark is meant to show.
``speedup`` = trainer_bf16 / plain_fp32 by ``tokens_per_s`` (every step,
wall clock); ``speedup_steady_cpu`` the same by ``steady_cpu_tokens_per_s``;
``speedup_compile*`` for the compiled variant.

    python -m benchmarks.train --json

With ``--base smollm2-135m`` the same comparison runs on the pretrained
base of generic call sites, on (prompt, completion) pairs of a generic site
(``benchmarks.generic_student``'s quests) in the base's chat template:

* ``plain_fp32``: the textbook loop, full fine-tuning, fp32, attention
  mask, fixed-size padded batches, loss on every token;
* ``plain_lora_fp32``: the same loop training the same LoRA r=16 q/k/v/o
  adapters as the trainer;
* ``trainer_lora_fp32``: :func:`trainer.loop.train` with the ``smollm2``
  preset's settings (LoRA r=16, fp32, length-bucketed batches without a
  mask, loss on the answer only) but adapters on every layer;
* ``trainer_lora_top10_fp32``: the same with adapters on the top 10 of 30
  layers only (``train.lora_layers: 10``): backward stops below them.

``speedup`` is then trainer_lora_fp32 / plain_fp32.

    python -m benchmarks.train --base smollm2-135m --steps 6 --rounds 1 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import sys
import tempfile
import time
from typing import Any


def _texts(n: int, seed: int) -> list[str]:
    """Level texts in the student's form: random rooms, sizes 16-24 x 12-16 like the quick preset."""
    import numpy as np

    from engine.core.level import Level, Placed
    from generator.store.callsite import LEVEL_SITE
    from generator.local.codec import encode_example

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        w, h = int(rng.integers(16, 25)), int(rng.integers(12, 17))
        grid = np.ones((h, w), dtype=np.uint8)
        grid[1:-1, 1:-1] = (rng.random((h - 2, w - 2)) < 0.25).astype(np.uint8)
        grid[1:3, 1:3] = grid[h - 3:h - 1, w - 3:w - 1] = 0
        free = [(x, y) for y in range(1, h - 1) for x in range(1, w - 1)
                if grid[y, x] == 0 and x + y > 8 and (x, y) != (w - 2, h - 2)]
        e, i = int(rng.integers(0, 6)), int(rng.integers(0, 4))
        pick = rng.permutation(len(free))[: e + i]
        level = Level(name="b", grid=grid, spawn=(1, 1), exit=(w - 2, h - 2), theme="crypt",
                      enemies=[Placed("rat", *free[j]) for j in pick[:e]], items=[Placed("potion", *free[j]) for j in pick[e:]])
        spec = {"width": w, "height": h, "difficulty": 3, "enemies": e, "items": i, "theme": "crypt"}
        out.append(encode_example(LEVEL_SITE, {"spec": spec}, level.to_dict()))
    return out


def _plain(texts: list[str], args: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import LlamaForCausalLM

    from trainer.model import micro_config
    from trainer.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, kind="char")
    bos, eos, pad = tok.token_to_id("<s>"), tok.token_to_id("</s>"), tok.token_to_id("<pad>")
    seqs = [[bos, *tok.encode(t).ids, eos] for t in texts]
    torch.manual_seed(args["seed"])
    device = torch.device(args.get("device") or "cpu")
    model = LlamaForCausalLM(micro_config(args["preset"], tok.get_vocab_size())).to(device)
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    return _textbook_loop(model, opt, seqs, pad, args, device=device, clip=1.0)


def _textbook_loop(model: Any, opt: Any, seqs: list[list[int]], pad: int, args: dict[str, Any], *,
                   device: Any = None, clip: float | None = None) -> dict[str, Any]:
    """Random padded batches of ``seqs``, loss on every real token; the time of forward, backward and step."""
    import numpy as np
    import torch

    rng = np.random.default_rng(args["seed"])
    bs = args["batch_size"]
    tokens, seconds = 0, 0.0
    steady_tokens, steady_cpu = 0, 0.0
    for step in range(args["steps"]):
        idx = rng.choice(len(seqs), size=bs, replace=False)
        batch = [seqs[i] for i in idx]
        width = max(map(len, batch))
        ids = torch.full((bs, width), pad, dtype=torch.long)
        mask = torch.zeros((bs, width), dtype=torch.long)
        for r, s in enumerate(batch):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        if device is not None:
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize()  # count the GPU's work, not only the launches
        seconds += time.perf_counter() - started
        tokens += int(mask.sum())
        if step:
            steady_cpu += time.process_time() - cpu_started
            steady_tokens += int(mask.sum())
    return {"tokens_per_s": tokens / seconds, "tokens": tokens, "seconds": seconds, "final_loss": float(loss.detach()),
            "steady_cpu_tokens_per_s": steady_tokens / max(steady_cpu, 1e-9) * args["threads"]}


def _trainer(texts: list[str], args: dict[str, Any], bf16: bool, compile: bool) -> dict[str, Any]:
    import statistics

    from trainer.loop import TrainConfig, read_result, train

    cfg = TrainConfig(base="micro", model_preset=args["preset"], steps=args["steps"],
                      batch_size=args["batch_size"], lr=1e-3, warmup_steps=1, bf16=bf16, eval_every=0,
                      checkpoint_every=0, seed=args["seed"], compile=compile)
    cpu_at: list[float] = []
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        train(cfg, texts, [], tmp, resume=False, progress=False, on_step=lambda _s, _l: cpu_at.append(time.process_time()))
        res = read_result(tmp)
    steady = res.history[1:]
    step_seconds = [h["seconds"] for h in res.history]
    return {"tokens_per_s": res.tokens_per_s, "seconds": res.train_seconds, "final_loss": res.train_loss,
            "steps": res.step,
            "steady_cpu_tokens_per_s": sum(h["tokens"] for h in steady) / max(cpu_at[-1] - cpu_at[0], 1e-9)
            * args["threads"],
            "steady_tokens_per_s": sum(h["tokens"] for h in steady) / max(sum(h["seconds"] for h in steady), 1e-9),
            "first_step_seconds": step_seconds[0],
            "compile_seconds": max(0.0, step_seconds[0] - statistics.median(step_seconds[1:])) if compile else 0.0}


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of a generic site, in the compact form."""
    from benchmarks.generic_student import SITE, calls, teacher
    from generator.local.codec import encode_completion, encode_prompt

    return [(encode_prompt(SITE, a), encode_completion(SITE, a, teacher(a))) for a in calls(n, seed)]


def _plain_base(pairs: list[tuple[str, str]], args: dict[str, Any], lora: bool) -> dict[str, Any]:
    """The textbook loop on a pretrained base: padded random batches, attention mask, loss on every token."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from generator.local.prompting import PromptFormat
    from trainer.model import LORA_TARGETS, resolve_base

    base = resolve_base(args["base"], args.get("data_dir"))
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    fmt = PromptFormat.from_dir(base, tok)
    seqs = [fmt.example_ids(tok, p, c)[0] for p, c in pairs]
    torch.manual_seed(args["seed"])
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, use_safetensors=True,
                                                 dtype=torch.float32)
    model.config.use_cache = False
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                                                 bias="none", task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return _textbook_loop(model, opt, seqs, fmt.pad_id, args)


def _trainer_base(pairs: list[tuple[str, str]], args: dict[str, Any], top_layers: int | None = None) -> dict[str, Any]:
    from trainer.config import load_preset
    from trainer.loop import read_result, train
    from trainer.model import resolve_base

    resolve_base(args["base"], args.get("data_dir"))
    cfg = load_preset("smollm2", overrides=[f"train.base={args['base']}", f"train.steps={args['steps']}",
                                            f"train.batch_size={args['batch_size']}", "train.eval_every=0",
                                            "train.checkpoint_every=0", "train.warmup_steps=1",
                                            f"train.seed={args['seed']}", "train.max_minutes=null",
                                            f"train.lora_layers={'null' if top_layers is None else top_layers}"]).train
    cpu_at: list[float] = []
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        train(cfg, pairs, [], tmp, resume=False, progress=False,
              on_step=lambda _s, _l: cpu_at.append(time.process_time()))
        res = read_result(tmp)
    steady = res.history[1:]
    return {"tokens_per_s": res.tokens_per_s, "seconds": res.train_seconds, "final_loss": res.train_loss,
            "steps": res.step,
            "steady_cpu_tokens_per_s": sum(h["tokens"] for h in steady) / max(cpu_at[-1] - cpu_at[0], 1e-9)
            * args["threads"]}


def _child(variant: str, args: dict[str, Any], queue: Any) -> None:
    if args.get("device") != "cuda":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer (accelerate) would otherwise pick a GPU
    import torch

    torch.set_num_threads(args["threads"])
    if args.get("base", "micro") != "micro":
        pairs = _pairs(args["examples"], args["seed"])
        out = _trainer_base(pairs, args, 10 if "top10" in variant else None) if variant.startswith("trainer") else \
            _plain_base(pairs, args, lora=variant == "plain_lora_fp32")
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(out)
        return
    texts = _texts(args["examples"], args["seed"])
    if variant == "plain_fp32":
        out = _plain(texts, args)
    else:
        out = _trainer(texts, args, bf16="bf16" in variant, compile=variant.endswith("compile"))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


VARIANTS = ("plain_fp32", "trainer_fp32", "trainer_bf16", "trainer_bf16_compile")
BASE_VARIANTS = ("plain_fp32", "plain_lora_fp32", "trainer_lora_fp32", "trainer_lora_top10_fp32")


def _one(ctx: Any, variant: str, args: dict[str, Any]) -> dict[str, Any]:
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(variant, args, q))
    p.start()
    while True:
        try:
            out = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"benchmark variant {variant} died (exit code {p.exitcode}); see stderr")
    p.join()
    return out


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Every variant once per round, the order rotated each round; the median round counts."""
    if args.get("omp_wait_policy", "passive") == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by OpenMP when each spawned child starts torch
    ctx = mp.get_context("spawn")
    variants = VARIANTS if args.get("base", "micro") == "micro" else BASE_VARIANTS
    rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(args["rounds"]):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for variant in order:
            rounds[variant].append(_one(ctx, variant, args))
    results: dict[str, Any] = {}
    for variant, outs in rounds.items():
        ranked = sorted(outs, key=lambda o: o["tokens_per_s"])
        cpu = sorted(o["steady_cpu_tokens_per_s"] for o in outs)
        results[variant] = {**ranked[len(ranked) // 2], "rounds_tokens_per_s": [round(o["tokens_per_s"], 1) for o in outs],
                            "steady_cpu_tokens_per_s": cpu[len(cpu) // 2],
                            "rounds_steady_cpu_tokens_per_s": [round(o["steady_cpu_tokens_per_s"], 1) for o in outs]}
    base = results["plain_fp32"]["tokens_per_s"]
    base_cpu = results["plain_fp32"]["steady_cpu_tokens_per_s"]
    if args.get("base", "micro") != "micro":
        lora = results["trainer_lora_fp32"]
        return {
            "benchmark": "train", "base": args["base"], "steps": args["steps"], "rounds": args["rounds"],
            "batch_size": args["batch_size"], "threads": args["threads"], "seed": args["seed"], "variants": results,
            "speedup": lora["tokens_per_s"] / base,
            "speedup_steady_cpu": lora["steady_cpu_tokens_per_s"] / base_cpu,
            "speedup_vs_plain_lora": lora["tokens_per_s"] / results["plain_lora_fp32"]["tokens_per_s"],
            "speedup_top10": results["trainer_lora_top10_fp32"]["tokens_per_s"] / base,
            "speedup_top10_steady_cpu": results["trainer_lora_top10_fp32"]["steady_cpu_tokens_per_s"] / base_cpu,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "peak_rss_mb": {k: round(v["peak_rss_mb"], 1) for k, v in results.items()},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()},
        }
    compiled = results["trainer_bf16_compile"]
    return {
        "benchmark": "train",
        "model_preset": args["preset"],
        "steps": args["steps"],
        "rounds": args["rounds"],
        "batch_size": args["batch_size"],
        "threads": args["threads"],
        "seed": args["seed"],
        "device": args.get("device") or "cpu",
        "variants": results,
        "speedup": results["trainer_bf16"]["tokens_per_s"] / base,
        "speedup_fp32": results["trainer_fp32"]["tokens_per_s"] / base,
        "speedup_steady_cpu": results["trainer_bf16"]["steady_cpu_tokens_per_s"] / base_cpu,
        "speedup_fp32_steady_cpu": results["trainer_fp32"]["steady_cpu_tokens_per_s"] / base_cpu,
        "speedup_compile": compiled["tokens_per_s"] / base,
        "speedup_compile_steady_cpu": compiled["steady_cpu_tokens_per_s"] / base_cpu,
        "compile_seconds": round(compiled["compile_seconds"], 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "peak_rss_mb": {k: round(v["peak_rss_mb"], 1) for k, v in results.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="micro-5m", help="micro model shape (default micro-5m)")
    p.add_argument("--base", default="micro", help="micro (default) or a pretrained base such as smollm2-135m "
                                                   "(trained with LoRA on a generic site's pairs)")
    p.add_argument("--data-dir", help="data directory holding the converted base (default: $FORGE_HOME)")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per variant and round (default 10)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, variant order rotated each round (default 2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--examples", type=int, default=256, help="distinct level texts (default 256)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (default) or cuda: both sides on the GPU (the trainer through accelerate)")
    p.add_argument("--omp-wait-policy", choices=("passive", "inherit"), default="passive",
                   help="OpenMP wait policy of every variant (default passive; inherit: this environment's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.steps < 2 or min(a.rounds, a.batch_size, a.threads) < 1 or a.examples < a.batch_size:
        p.error("--steps must be >= 2 (the first step is warm-up), --rounds, --batch-size and --threads >= 1, "
                "and --examples >= --batch-size")
    if a.base != "micro":
        from trainer.errors import TrainerError
        from trainer.model import resolve_base

        try:
            resolve_base(a.base, a.data_dir)  # converted once here, not in every variant's process
        except TrainerError as exc:
            p.error(str(exc))
    args = {"preset": a.preset, "steps": a.steps, "rounds": a.rounds, "batch_size": a.batch_size,
            "examples": a.examples, "threads": a.threads, "seed": a.seed, "omp_wait_policy": a.omp_wait_policy,
            "device": a.device, "base": a.base, "data_dir": a.data_dir}
    from generator.guards.output import json_stdout

    with json_stdout(a.json) as emit:  # what libraries and the variant processes print goes to stderr
        out = run(args)
        if a.json:
            emit(out)
            return 0
    if a.base != "micro":
        for name, v in out["variants"].items():
            print(f"{name:<18} {v['tokens_per_s']:>7,.1f} tok/s (wall)  {v['steady_cpu_tokens_per_s']:>7,.1f} tok/s "
                  f"(steady, CPU time)  peak {v['peak_rss_mb']:,.0f} MB")
        print(f"speedup (trainer LoRA vs plain full fp32): {out['speedup']:.2f}x wall, "
              f"{out['speedup_steady_cpu']:.2f}x steady CPU; vs plain LoRA {out['speedup_vs_plain_lora']:.2f}x")
    else:
        for name, v in out["variants"].items():
            print(f"{name:<21} {v['tokens_per_s']:>7,.0f} tok/s (wall, every step)  "
                  f"{v['steady_cpu_tokens_per_s']:>7,.0f} tok/s (steady, CPU time)  peak {v['peak_rss_mb']:,.0f} MB")
        print(f"speedup (trainer bf16 vs plain fp32): {out['speedup']:.2f}x wall, "
              f"{out['speedup_steady_cpu']:.2f}x steady CPU time; compiled {out['speedup_compile']:.2f}x / "
              f"{out['speedup_compile_steady_cpu']:.2f}x (compile ~{out['compile_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
