"""GGUF export of a Llama-architecture model folder (f16 and q8_0) for llama.cpp-family runtimes.

Input: a folder with ``config.json`` (a ``LlamaConfig``), ``model.safetensors``
(merged weights: no LoRA adapters) and ``tokenizer.json`` (a ``tokenizers``
BPE).  Output: one ``.gguf`` file with the hyper-parameters, the tokenizer
(vocabulary, merges, special ids) and the tensors under llama.cpp's names
(``gguf.get_tensor_name_map``).

Two details follow llama.cpp's own converter:

- the query and key projections are re-ordered per head, because llama.cpp
  applies rotary embeddings to interleaved pairs where Hugging Face rotates
  the two halves of each head;
- ``q8_0`` quantizes matrices whose rows are a multiple of 32 values; norms
  stay float32 and any other matrix falls back to float16.

Only the token stream is exported: per-token extras a project runtime might
add are not part of GGUF (DESIGN.md).  Reading the file back with
``gguf.GGUFReader`` is how the tests check it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np

from generator.local.prompting import byte_symbols
from generator.local.prompting import is_byte_level as _is_byte_level
from generator.errors import GeneratorError

__all__ = ["GGUF_TYPES", "GGUFExportError", "export_gguf", "read_gguf_summary"]

log = logging.getLogger(__name__)

GGUF_TYPES: Final = ("f16", "q8_0", "f32")


class GGUFExportError(GeneratorError):
    """The model folder cannot be written as GGUF (not Llama, missing files, unknown type)."""


def _permute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's half-split rotary layout -> llama.cpp's interleaved layout, per head."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load(model_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise GGUFExportError(f"GGUF export: {model_dir} has no {name} (need a merged HF Llama folder)")
    config = json.loads((model_dir / "config.json").read_text())
    arch = (config.get("architectures") or [config.get("model_type", "?")])[0]
    if config.get("model_type") != "llama":
        raise GGUFExportError(f"GGUF export: {model_dir} holds a {arch} model; only Llama-architecture models are exported")
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(model_dir / "model.safetensors"))
    except Exception:  # bf16 has no NumPy dtype: go through torch
        from safetensors.torch import load_file as load_torch

        tensors = {k: v.float().numpy() for k, v in load_torch(str(model_dir / "model.safetensors")).items()}
    if any(".lora_" in k for k in tensors):
        raise GGUFExportError(f"GGUF export: {model_dir} still holds LoRA adapters; merge them first (trainer.quantize.merge_lora)")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    return config, tensors, tokenizer


def _tokenizer_metadata(writer: Any, tok: dict[str, Any], config: dict[str, Any], vocab_size: int,
                        model_dir: Path) -> None:
    import gguf

    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise GGUFExportError(f"GGUF export: tokenizer model {model.get('type')!r} is not BPE")
    vocab: dict[str, int] = dict(model.get("vocab", {}))
    specials = {}
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            specials[added["id"]] = added["content"]
    # A plain (character) BPE stores raw text; llama.cpp expects GPT-2's byte symbols.
    if _is_byte_level(tok):
        def spell(text: str) -> str:
            return text
    else:
        table = byte_symbols()

        def spell(text: str) -> str:
            return "".join(table[b] for b in text.encode("utf-8"))

    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for text, idx in vocab.items():
        if idx < vocab_size:
            tokens[idx] = text if idx in specials else spell(text)
            types[idx] = gguf.TokenType.CONTROL if idx in specials else gguf.TokenType.NORMAL
    merges = [m.split(" ", 1) if isinstance(m, str) else m for m in model.get("merges", [])]
    merges = [f"{spell(a)} {spell(b)}" for a, b in merges]
    if not merges:
        # A character-level vocabulary has no merges, but llama.cpp refuses a BPE vocabulary
        # without a merges list ("cannot find tokenizer merges"): one merge of two control
        # tokens, which never occur next to each other in text, changes no tokenisation.
        eos_text = next((specials[i] for i in sorted(specials) if specials[i] in ("</s>", "<eos>")), None)
        merges = [f"{eos_text} {eos_text}"] if eos_text else [f"{tokens[0]} {tokens[0]}"]
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-pair encoding with a merges list
    writer.add_tokenizer_pre(_pre_tokenizer(model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_merges(merges)
    # Special ids, BOS rule and chat template exactly as the student uses them (PromptFormat reads the
    # folder's config.json / tokenizer_config.json), never guessed from token names.
    from generator.errors import ModelLoadError
    from generator.local.prompting import PromptFormat

    try:
        fmt = PromptFormat.from_dir(model_dir)
    except ModelLoadError as exc:
        raise GGUFExportError(f"GGUF export: {exc}") from None
    if fmt.bos_id is not None:
        writer.add_bos_token_id(fmt.bos_id)
    writer.add_eos_token_id(fmt.eos_id)
    writer.add_pad_token_id(fmt.pad_id)
    unk = next((i for i, t in specials.items() if t in ("<unk>", "<|endoftext|>")), None)
    if unk is not None:
        writer.add_unk_token_id(unk)
    writer.add_add_bos_token(fmt.add_bos)
    if fmt.chat_template:
        writer.add_chat_template(fmt.chat_template)


def _pre_tokenizer(model_dir: Path) -> str:
    """llama.cpp's pre-tokenizer name: the base's own (recorded when a packaged base was converted), else "default"."""
    ref = model_dir / "student_base.json"
    if ref.is_file():
        try:
            pre = (json.loads(ref.read_text()).get("source") or {}).get("gguf_pre")
        except ValueError:
            pre = None
        if isinstance(pre, str) and pre:
            return pre
    return "default"


def export_gguf(model_dir: str | Path, out_path: str | Path, qtype: str = "q8_0", *, name: str | None = None) -> Path:
    """Write ``model_dir`` (merged HF Llama) to ``out_path`` as GGUF of type ``qtype`` (f16, q8_0, f32)."""
    import gguf

    if qtype not in GGUF_TYPES:
        raise GGUFExportError(f"GGUF export: unknown type {qtype!r}; use one of {', '.join(GGUF_TYPES)}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    config, tensors, tok = _load(model_dir)
    n_layer = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    d_model = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or d_model // n_head)
    vocab_size = int(config["vocab_size"])
    rope = config.get("rope_parameters") or {}
    rope_theta = float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), "llama")
    writer.add_name(name or model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(d_model)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_theta)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(vocab_size)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype]
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _tokenizer_metadata(writer, tok, config, vocab_size, model_dir)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    for hf_name, data in sorted(tensors.items()):
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise GGUFExportError(f"GGUF export: no llama.cpp name for tensor {hf_name!r}; is this a plain Llama?")
        data = np.asarray(data, dtype=np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = _permute_rotary(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute_rotary(data, n_kv)
        if data.ndim == 1 or qtype == "f32":
            writer.add_tensor(new_name, data)
        elif qtype == "q8_0" and data.shape[-1] % block == 0:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(new_name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(new_name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    log.info("GGUF %s written to %s (%.1f MB)", qtype, out_path, out_path.stat().st_size / 1e6)
    return out_path


def read_gguf_summary(path: str | Path) -> dict[str, Any]:
    """Architecture, a few hyper-parameters and ``{tensor name: (shape, type)}`` of a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode()
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            return len(f.data)
        return f.parts[f.data[0]].tolist()[0]

    return {
        "architecture": field("general.architecture"),
        "block_count": field("llama.block_count"),
        "embedding_length": field("llama.embedding_length"),
        "tokenizer_model": field("tokenizer.ggml.model"),
        "tokens": field("tokenizer.ggml.tokens"),
        "merges": field("tokenizer.ggml.merges"),
        "tensors": {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name) for t in reader.tensors},
    }
