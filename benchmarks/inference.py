"""Student inference speed: int8 vs fp32, batched vs one at a time, vs plain HF generate.

Everything is measured in one run on the same model and the same specs, so
the ratios compare like with like.  Without ``--model-dir`` a micro model is
built from its preset (seeded, untrained): masked decoding always writes the
whole grid, so the speed of an untrained model is that of a trained one.

    python -m benchmarks.inference --json
    python -m benchmarks.inference --model-dir DIR --levels 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = {"width": 24, "height": 16, "difficulty": 4, "enemies": 4, "items": 3, "theme": "crypt"}


def _build_micro(preset: str, out: Path, seed: int) -> None:
    from generator.local.codec import LEVEL_FORM, encode_example
    from trainer.model import build_model
    from trainer.tokenizer import train_tokenizer

    rows = ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16]
    level = {"rows": rows, "spawn": {"x": 1, "y": 1}, "exit": {"x": 9, "y": 9}, "enemies": [], "items": []}
    spec = {**SPEC, "width": 16, "height": 12, "enemies": 0, "items": 0}
    tok = train_tokenizer([encode_example(LEVEL_FORM, spec, level)])
    build_model("micro", preset, vocab_size=tok.get_vocab_size(), seed=seed).save_pretrained(
        out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))


def _summary(ms: list[float], tokens: int) -> dict[str, float]:
    ms_sorted = sorted(ms)
    p95 = ms_sorted[min(len(ms_sorted) - 1, round(0.95 * (len(ms_sorted) - 1)))]
    return {
        "ms_per_level_p50": round(statistics.median(ms), 1),
        "ms_per_level_p95": round(p95, 1),
        "tokens_per_s": round(tokens / (sum(ms) / 1000.0), 1),
    }


def _single(student: Any, levels: int, seed: int) -> dict[str, float]:
    student.generate({"spec": SPEC}, seed=seed - 1)  # warm-up
    ms, tokens = [], 0
    for i in range(levels):
        out = student.generate({"spec": SPEC}, seed=seed + i)
        ms.append(out.latency_ms)
        tokens += out.tokens
    return _summary(ms, tokens)


def _batched(student: Any, levels: int, batch: int, seed: int) -> dict[str, float]:
    ms, tokens = [], 0
    rounds = max(1, levels // batch)
    for i in range(rounds):
        outs = student.generate_levels({"spec": SPEC}, batch, seed=seed + i)
        ms += [outs[0].latency_ms / batch] * batch
        tokens += sum(o.tokens for o in outs)
    return {**_summary(ms, tokens), "batch": batch}


def _hf_generate(model_dir: Path, levels: int, seed: int) -> dict[str, float]:
    """Plain ``model.generate`` (fp32, KV cache, no mask) writing the same number of tokens."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from generator.local.codec import LEVEL_FORM, encode_prompt

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True).eval()
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids = [tok.token_to_id("<s>"), *tok.encode(encode_prompt(LEVEL_FORM, {"spec": SPEC})).ids]
    n_new = SPEC["height"] * (7 + SPEC["width"] + 1)
    inp = torch.tensor([ids])
    ms = []
    with torch.inference_mode():
        for i in range(levels + 1):
            torch.manual_seed(seed + i)
            t = time.perf_counter()
            model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=n_new, min_new_tokens=n_new,
                           do_sample=True, pad_token_id=0)
            if i:  # the first call is a warm-up
                ms.append((time.perf_counter() - t) * 1000.0)
    return _summary(ms, n_new * levels)


def _procedural(levels: int, seed: int) -> dict[str, float]:
    """The offline teacher through its backend; its tokens are the levels' length in the student's character form."""
    from engine.core.level import LevelSpec
    from generator.backends import BackendRequest, ProceduralBackend
    from generator.local.codec import LEVEL_FORM, encode_example, encode_prompt

    backend, spec, ms, tokens = ProceduralBackend(), LevelSpec(**SPEC), [], 0
    prompt = len(encode_prompt(LEVEL_FORM, {"spec": SPEC}))
    backend.generate(BackendRequest(spec=spec, seed=seed - 1))  # warm-up, as for the students
    for i in range(levels):
        t = time.perf_counter()
        out = backend.generate(BackendRequest(spec=spec, seed=seed + i))
        ms.append((time.perf_counter() - t) * 1000.0)
        if out.level is not None:
            tokens += len(encode_example(LEVEL_FORM, {"spec": SPEC}, out.level.to_dict())) - prompt
    return {**_summary(ms, tokens), "ms_per_level_p50": round(statistics.median(ms), 2), "backend": "procedural"}


def run(model_dir: Path | None, preset: str, levels: int, batch: int, threads: int, seed: int) -> dict[str, Any]:
    import torch

    from generator.local.student import LocalStudent
    from trainer.model import count_parameters

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        if model_dir is None:
            model_dir = Path(tmp)
            _build_micro(preset, model_dir, seed)
        fp32 = LocalStudent.load(model_dir, quantize=None)
        int8 = LocalStudent.load(model_dir, quantize="int8")
        result: dict[str, Any] = {
            "model": str(model_dir) if model_dir != Path(tmp) else preset,
            "parameters": count_parameters(fp32.model),
            "spec": SPEC,
            "threads": threads,
            "levels": levels,
            "seed": seed,
            "hf_generate_fp32": _hf_generate(model_dir, levels, seed),
            "fp32": _single(fp32, levels, seed),
            "int8": _single(int8, levels, seed),
            "int8_batched": _batched(int8, levels, batch, seed),
            "procedural": _procedural(levels, seed),
        }
        result.update(_gguf_worker_variants(model_dir, levels, batch, threads, seed, result["int8"]))
    p50 = {k: result[k]["ms_per_level_p50"] for k in ("hf_generate_fp32", "fp32", "int8", "int8_batched")}
    result["speedup_int8_vs_fp32"] = round(p50["fp32"] / p50["int8"], 2)
    result["speedup_int8_vs_hf_generate"] = round(p50["hf_generate_fp32"] / p50["int8"], 2)
    result["speedup_int8_batched_vs_int8"] = round(p50["int8"] / p50["int8_batched"], 2)
    # What the game serves (generator.backends.student): the GGUF q8_0 worker when a runtime is
    # installed, else torch int8 -- the "quantized vs the same model fp32".
    served = "gguf_q8_0_worker" if isinstance(result.get("gguf_q8_0_worker"), dict) else "int8"
    result["served"] = served
    result["served_ms_per_level_p50"] = result[served]["ms_per_level_p50"]
    result["speedup_served_vs_fp32"] = round(p50["fp32"] / result["served_ms_per_level_p50"], 2)
    result["speedup_served_vs_hf_generate"] = round(p50["hf_generate_fp32"] / result["served_ms_per_level_p50"], 2)
    return result


# ---------------------------------------------------------------------------------------------
# GGUF worker variants (generator.local.gguf_worker): self-contained; run() calls this one function.


def _gguf_worker_variants(model_dir: Path, levels: int, batch: int, threads: int, seed: int,
                          int8: dict[str, float]) -> dict[str, Any]:
    """The same model exported to GGUF (f16, q8_0), served by ctransformers (and llama.cpp) in a worker process.

    Latency is the caller's round trip (pipe included); the worker start (process + load) is
    reported apart.  Without ctransformers the result says so instead.
    """
    from generator.local.gguf_worker import GGUFWorker, runtime_available
    from generator.local.gguf import export_gguf

    if not runtime_available("ctransformers"):
        return {"gguf_worker": "skipped: ctransformers not installed (pip install 'dungeon-forge[gguf]')"}
    out: dict[str, Any] = {}
    variants = [("ctransformers", "f16", "gguf_f16_worker"), ("ctransformers", "q8_0", "gguf_q8_0_worker")]
    if runtime_available("llama_cpp"):  # optional: llama-cpp-python has no wheel here, it is built from source
        variants += [("llama_cpp", "f16", "gguf_f16_llama_cpp_worker"),
                     ("llama_cpp", "q8_0", "gguf_q8_0_llama_cpp_worker")]
    with tempfile.TemporaryDirectory(prefix="forge-bench-gguf-") as tmp:
        for runtime, qtype, key in variants:
            path = Path(tmp) / f"student-{qtype}.gguf"
            if not path.exists():
                export_gguf(model_dir, path, qtype)
            started = time.perf_counter()
            with GGUFWorker(path, runtime=runtime, tokenizer=model_dir / "tokenizer.json", threads=threads,
                            timeout_s=600) as worker:
                start_ms = round((time.perf_counter() - started) * 1000.0, 1)
                out[key] = {**_single(worker, levels, seed), "worker_start_ms": start_ms}
                if key == "gguf_q8_0_worker":
                    out["gguf_q8_0_worker_batched"] = _batched(worker, levels, batch, seed)
    out["speedup_gguf_q8_0_vs_int8"] = round(int8["ms_per_level_p50"] / out["gguf_q8_0_worker"]["ms_per_level_p50"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a trained student (default: an untrained micro model)")
    parser.add_argument("--preset", default="micro-5m", help="micro preset when no --model-dir (default micro-5m)")
    parser.add_argument("--levels", type=int, default=8, help="levels per variant (default 8)")
    parser.add_argument("--batch", type=int, default=8, help="levels per batch in the batched variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady on a shared box)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.model_dir, args.preset, args.levels, args.batch, args.threads, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"student inference, {result['model']} ({result['parameters']:,} parameters), "
          f"{SPEC['width']}x{SPEC['height']} levels, {args.threads} thread(s)")
    for key in ("hf_generate_fp32", "fp32", "int8", "int8_batched"):
        r = result[key]
        print(f"  {key:<17} p50 {r['ms_per_level_p50']:>8.1f} ms/level  p95 {r['ms_per_level_p95']:>8.1f}  "
              f"{r['tokens_per_s']:>8.0f} tok/s")
    for key in (k for k in result if k.startswith("gguf_") and isinstance(result[k], dict)):
        r = result[key]
        print(f"  {key:<17} p50 {r['ms_per_level_p50']:>8.1f} ms/level  p95 {r['ms_per_level_p95']:>8.1f}  "
              f"{r['tokens_per_s']:>8.0f} tok/s")
    r = result["procedural"]
    print(f"  procedural        p50 {r['ms_per_level_p50']:>8.2f} ms/level  p95 {r['ms_per_level_p95']:>8.1f}  "
          f"{r['tokens_per_s']:>8.0f} tok/s (the teacher offline)")
    print(f"  served ({result['served']}) {result['served_ms_per_level_p50']} ms/level p50: "
          f"{result['speedup_served_vs_fp32']}x fp32, {result['speedup_served_vs_hf_generate']}x HF generate")
    print(f"  int8 vs fp32 {result['speedup_int8_vs_fp32']}x, vs HF generate "
          f"{result['speedup_int8_vs_hf_generate']}x, batched vs one-at-a-time "
          f"{result['speedup_int8_batched_vs_int8']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
