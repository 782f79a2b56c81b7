"""Schema-constrained decoding on the CPU: llguidance vs xgrammar vs outlines-core, same model and schemas.

For each library and each output schema of the project's kind (byllm's
shapes: an object of typed fields with ``required`` and
``additionalProperties: false``, string enums, nested objects, lists of
objects, ``anyOf`` with null, floats, booleans), the SmolLM2-135M base
(``generator.local.bases``; its byte-level BPE vocabulary of 49,152 tokens)
answers a compact prompt greedily with its logits masked by the library.

Per library it reports:

* ``compile_ms``: tokenizer preparation (once per process) and the schema's
  grammar compilation (once per site);
* ``mask_us_per_token``: median time to compute the allowed-token mask and
  advance the matcher, per generated token, beside ``forward_ms_per_token``
  (the model's own step) -- the overhead is their ratio;
* ``valid``: outputs that parse and validate against the schema
  (``jsonschema``), out of all; ``teacher_forced_ok``: the teacher's answer,
  fed token by token, is never refused (no false rejections);
* the unconstrained model on the same prompts is the control.

    python -m benchmarks.constrained --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

#: Output schemas in byllm's form, with a teacher answer each.
SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "quest": (
        {"type": "object", "title": "Quest", "properties": {
            "title": {"type": "string", "description": "Quest title naming the monster"},
            "reward": {"type": "integer"},
            "band": {"type": "string", "enum": ["low", "mid", "high"], "description": "reward band"}},
         "required": ["title", "reward", "band"], "additionalProperties": False},
        {"monster": {"name": "Gorak", "hp": 12}, "town": "Ashvale"},
        {"title": "Slay Gorak of Ashvale", "reward": 36, "band": "low"},
    ),
    "review": (
        {"type": "object", "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "subject": {"type": "string"}, "score": {"type": "number"}, "spoiler": {"type": "boolean"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
         "required": ["sentiment", "subject", "score", "spoiler", "note"], "additionalProperties": False},
        {"review": "The café's crêpes were wonderful, but the wait was long."},
        {"sentiment": "positive", "subject": "crêpes", "score": 0.7, "spoiler": False, "note": None},
    ),
    "recipe": (
        {"type": "object", "title": "Recipe", "properties": {
            "title": {"type": "string"},
            "ingredients": {"type": "array", "items": {
                "type": "object", "title": "Ingredient",
                "properties": {"name": {"type": "string"}, "grams": {"type": "integer"}},
                "required": ["name", "grams"], "additionalProperties": False}},
            "steps": {"type": "array", "items": {"type": "string"}},
            "minutes": {"type": "integer"}},
         "required": ["title", "ingredients", "steps", "minutes"], "additionalProperties": False},
        {"pantry": ["rice", "egg", "scallion"], "cuisine": "japanese"},
        {"title": "Tamago rice", "ingredients": [{"name": "rice", "grams": 200}, {"name": "egg", "grams": 60}],
         "steps": ["Cook rice", "Fry egg"], "minutes": 25},
    ),
    "spec": (
        {"type": "object", "title": "LevelSpec", "properties": {
            "width": {"type": "integer"}, "height": {"type": "integer"}, "difficulty": {"type": "integer"},
            "enemies": {"type": "integer"}, "items": {"type": "integer"},
            "theme": {"type": "string", "enum": ["crypt", "cave", "castle", "forest"]}},
         "required": ["width", "height", "difficulty", "enemies", "items", "theme"], "additionalProperties": False},
        {"last": {"width": 20, "height": 14, "difficulty": 3, "enemies": 2, "items": 1, "theme": "crypt"},
         "fun": 0.8},
        {"width": 22, "height": 14, "difficulty": 4, "enemies": 3, "items": 1, "theme": "cave"},
    ),
}

LIBRARIES = ("llguidance", "xgrammar", "outlines_core")


class _Matcher:
    """One library's matcher behind one interface: ``mask()`` -> bool array, ``advance(id)``, ``done()``."""

    def __init__(self, lib: str, prepared: Any, schema: dict[str, Any], vocab: int, eos: int) -> None:
        self.lib, self.vocab, self.eos = lib, vocab, eos
        if lib == "llguidance":
            import llguidance
            import llguidance.numpy as lnp

            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
            self.m = llguidance.LLMatcher(prepared, grammar)
            if self.m.is_error():
                raise ValueError(self.m.get_error())
            self.bits = lnp.allocate_token_bitmask(1, vocab)
        elif lib == "xgrammar":
            import xgrammar as xgr

            cg = prepared.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
            self.m = xgr.GrammarMatcher(cg)
            self.bits = xgr.allocate_token_bitmask(1, vocab)
        else:
            from outlines_core import Guide, Index
            from outlines_core.json_schema import build_regex_from_schema

            self.m = Guide(Index(build_regex_from_schema(json.dumps(schema), ""), prepared))

    def mask(self) -> np.ndarray:
        if self.lib == "llguidance":
            import llguidance.numpy as lnp

            lnp.fill_next_token_bitmask(self.m, self.bits, 0)
            return np.unpackbits(self.bits[0].view(np.uint8), bitorder="little")[: self.vocab].astype(bool)
        if self.lib == "xgrammar":
            self.m.fill_next_token_bitmask(self.bits)
            return np.unpackbits(self.bits[0].numpy().view(np.uint8), bitorder="little")[: self.vocab].astype(bool)
        out = np.zeros(self.vocab, dtype=bool)
        out[np.asarray(self.m.get_tokens(), dtype=np.int64)] = True
        return out

    def advance(self, token: int) -> bool:
        if self.lib == "llguidance":
            return bool(self.m.consume_token(token))
        if self.lib == "xgrammar":
            return bool(self.m.accept_token(token))
        try:
            self.m.advance(token)
            return True
        except Exception:  # noqa: BLE001 - a refused token
            return False

    def done(self) -> bool:
        if self.lib == "llguidance":
            return bool(self.m.is_stopped())
        if self.lib == "xgrammar":
            return bool(self.m.is_terminated())
        return bool(self.m.is_finished()) and set(self.m.get_tokens()) <= {self.eos}


def _prepare(lib: str, base_dir: Any, tok: Any, vocab: int, eos: int) -> Any:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(base_dir / "tokenizer.json"), eos_token=tok.id_to_token(eos))
    if lib == "llguidance":
        import llguidance.hf

        return llguidance.hf.from_tokenizer(hf, n_vocab=vocab)
    if lib == "xgrammar":
        import xgrammar as xgr

        return xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(hf, vocab_size=vocab, stop_token_ids=[eos]))
    from outlines_core import Vocabulary

    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    table: dict[str, list[int]] = {}
    for text, i in tok.get_vocab().items():
        if text not in special:
            table.setdefault(text, []).append(i)
    return Vocabulary(eos, table)


def run(args: dict[str, Any]) -> dict[str, Any]:
    import jsonschema
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from generator.local.bases import ensure_base
    from generator.local.codec import encode_prompt
    from generator.local.prompting import PromptFormat

    torch.set_num_threads(args["threads"])
    base = ensure_base("smollm2-135m", args.get("data_dir"))
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    fmt = PromptFormat.from_dir(base, tok)
    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, use_safetensors=True,
                                                 dtype=torch.float32).eval()
    vocab = int(model.config.vocab_size)
    results: dict[str, Any] = {}
    import importlib.util

    for lib in ("none", *args["libraries"]):
        entry: dict[str, Any] = {"schemas": {}}
        if lib != "none" and importlib.util.find_spec(lib) is None:
            results[lib] = {"error": f"{lib} is not installed (pip install {lib.replace('_', '-')})"}
            continue
        prepared = None
        if lib != "none":
            t0 = time.perf_counter()
            prepared = _prepare(lib, base, tok, vocab, fmt.eos_id)
            entry["tokenizer_prepare_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        mask_us: list[float] = []
        fwd_ms: list[float] = []
        valid = forced_ok = 0
        for name, (schema, call_args, answer) in SCHEMAS.items():
            row: dict[str, Any] = {}
            matcher = None
            if prepared is not None:
                t0 = time.perf_counter()
                try:
                    matcher = _Matcher(lib, prepared, schema, vocab, fmt.eos_id)
                except Exception as exc:  # noqa: BLE001 - a schema the library cannot compile is a result
                    row["error"] = f"{type(exc).__name__}: {exc}"[:200]
                    entry["schemas"][name] = row
                    continue
                row["compile_ms"] = round((time.perf_counter() - t0) * 1000, 2)
                # teacher-forced: every token of the teacher's compact answer must be allowed
                probe = _Matcher(lib, prepared, schema, vocab, fmt.eos_id)
                ok = True
                for t in tok.encode(json.dumps(answer, separators=(",", ":"), ensure_ascii=False),
                                    add_special_tokens=False).ids:
                    if not probe.mask()[t] or not probe.advance(t):
                        ok = False
                        break
                row["teacher_forced_ok"] = ok and (probe.done() or bool(probe.mask()[fmt.eos_id]))
                forced_ok += row["teacher_forced_ok"]
            ids = fmt.prompt_ids(tok, encode_prompt("bench:" + name + "#0", call_args))
            out: list[int] = []
            past = None
            with torch.inference_mode():
                feed = ids
                for _ in range(args["max_new_tokens"]):
                    t0 = time.perf_counter()
                    res = model(input_ids=torch.tensor([feed]), past_key_values=past, use_cache=True, logits_to_keep=1)
                    fwd_ms.append((time.perf_counter() - t0) * 1000)
                    past = res.past_key_values
                    logits = res.logits[0, -1].numpy()
                    if matcher is not None:
                        t0 = time.perf_counter()
                        allowed = matcher.mask()
                        logits = np.where(allowed, logits, -np.inf)
                    choice = int(np.argmax(logits))
                    if choice == fmt.eos_id:
                        if matcher is not None:
                            mask_us.append((time.perf_counter() - t0) * 1e6)
                        break
                    if matcher is not None:
                        matcher.advance(choice)
                        mask_us.append((time.perf_counter() - t0) * 1e6)
                    out.append(choice)
                    feed = [choice]
                    if matcher is not None and matcher.done():
                        break
            text = tok.decode(out, skip_special_tokens=True)
            try:
                value = json.loads(text.split("\n")[0])
                jsonschema.validate(value, schema)
                row["valid"] = True
            except Exception as exc:  # noqa: BLE001 - what failed is the result
                row["valid"] = False
                row["why"] = f"{type(exc).__name__}"
            valid += row["valid"]
            row["tokens"] = len(out)
            row["text"] = text[:160]
            entry["schemas"][name] = row
        entry["valid"] = f"{valid}/{len(SCHEMAS)}"
        if lib != "none":
            entry["teacher_forced_ok"] = f"{forced_ok}/{len(SCHEMAS)}"
            entry["mask_us_per_token"] = round(statistics.median(mask_us), 1) if mask_us else None
            entry["mask_us_p90"] = round(float(np.percentile(mask_us, 90)), 1) if mask_us else None
        entry["forward_ms_per_token"] = round(statistics.median(fwd_ms), 1) if fwd_ms else None
        if entry.get("mask_us_per_token") and entry["forward_ms_per_token"]:
            entry["overhead_pct"] = round(100 * entry["mask_us_per_token"] / 1000 / entry["forward_ms_per_token"], 2)
        results[lib] = entry
    return {"benchmark": "constrained", "model": "smollm2-135m fp32", "vocab": vocab, "threads": args["threads"],
            "max_new_tokens": args["max_new_tokens"], "libraries": results,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.constrained", description=__doc__.split("\n\n")[0])
    p.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated (default {','.join(LIBRARIES)})")
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--data-dir", help="data directory holding bases/ (default: $FORGE_HOME)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    libs = [x for x in a.libraries.split(",") if x]
    unknown = sorted(set(libs) - set(LIBRARIES))
    if unknown:
        p.error(f"unknown libraries {unknown}; choose from {', '.join(LIBRARIES)}")
    from generator.guards.output import json_stdout

    with json_stdout(a.json) as emit:  # what libraries print goes to stderr
        out = run({"libraries": libs, "max_new_tokens": a.max_new_tokens, "threads": a.threads, "data_dir": a.data_dir})
        if a.json:
            emit(out)
    if not a.json:
        for lib, e in out["libraries"].items():
            if "error" in e:
                print(f"{lib:<14} {e['error']}")
                continue
            print(f"{lib:<14} valid {e['valid']}  teacher-forced {e.get('teacher_forced_ok', '-')}  "
                  f"mask {e.get('mask_us_per_token')} us/token (p90 {e.get('mask_us_p90')})  "
                  f"forward {e['forward_ms_per_token']} ms/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
