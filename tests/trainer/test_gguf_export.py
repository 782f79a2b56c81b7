"""GGUF export of a tiny Llama built from config: read back with gguf.GGUFReader."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

from generator.local.gguf import GGUFExportError, export_gguf, read_gguf_summary  # noqa: E402

N_LAYER, D, HEADS, KV, FF = 2, 64, 4, 2, 128


def _tiny_llama(tmp_path, *, tie=True):
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM

    chars = sorted(set("#.+@>\n 0123456789Lxdei"))
    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *chars])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(["<pad>", "<s>", "</s>", "<unk>"])
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=D, num_hidden_layers=N_LAYER, num_attention_heads=HEADS,
                      num_key_value_heads=KV, intermediate_size=FF, max_position_embeddings=256,
                      tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path / "model"
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    return out, model, vocab


@pytest.mark.parametrize("qtype", ["f16", "q8_0"])
def test_export_reads_back_with_llama_names_shapes_and_types(tmp_path, qtype):
    src, model, vocab = _tiny_llama(tmp_path)
    path = export_gguf(src, tmp_path / f"student-{qtype}.gguf", qtype)
    info = read_gguf_summary(path)
    assert info["architecture"] == "llama" and info["block_count"] == N_LAYER and info["embedding_length"] == D
    assert info["tokenizer_model"] == "gpt2" and info["tokens"] == len(vocab)
    t = info["tensors"]
    expected = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{n}.weight" for i in range(N_LAYER)
        for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm")
    }
    assert set(t) == expected  # tied embeddings: no separate output.weight
    # GGUF lists shapes innermost-first
    assert t["blk.0.attn_q.weight"][0] == (D, D) and t["blk.0.attn_k.weight"][0] == (D, KV * D // HEADS)
    assert t["blk.1.ffn_down.weight"][0] == (FF, D)
    assert t["blk.0.attn_norm.weight"][1] == "F32"
    matrix_type = {"f16": "F16", "q8_0": "Q8_0"}[qtype]
    assert t["blk.0.ffn_up.weight"][1] == matrix_type and t["token_embd.weight"][1] == matrix_type


def test_values_survive_and_rotary_rows_are_interleaved(tmp_path):
    src, model, _ = _tiny_llama(tmp_path, tie=False)
    path = export_gguf(src, tmp_path / "s.gguf", "f32")
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_allclose(tensors["blk.0.attn_v.weight"], sd["model.layers.0.self_attn.v_proj.weight"])
    np.testing.assert_allclose(tensors["output.weight"], sd["lm_head.weight"])
    q_hf = sd["model.layers.0.self_attn.q_proj.weight"]
    q_gg = tensors["blk.0.attn_q.weight"]
    hd = D // HEADS
    # llama.cpp's layout: head h row 2i is HF row i, row 2i+1 is HF row i + hd/2
    np.testing.assert_allclose(q_gg[2], q_hf[1])
    np.testing.assert_allclose(q_gg[3], q_hf[1 + hd // 2])
    np.testing.assert_allclose(np.sort(q_gg, axis=0), np.sort(q_hf, axis=0))


def test_q8_0_is_close_to_the_weights(tmp_path):
    src, model, _ = _tiny_llama(tmp_path)
    path = export_gguf(src, tmp_path / "q.gguf", "q8_0")
    reader = gguf.GGUFReader(str(path))
    t = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight")
    deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(FF, D)
    ref = model.state_dict()["model.layers.0.mlp.up_proj.weight"].numpy()
    assert np.abs(deq - ref).max() < 0.01 * max(1e-6, np.abs(ref).max()) + 1e-3


def test_non_llama_and_missing_files_are_clear_errors(tmp_path):
    src, _, _ = _tiny_llama(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GGUFExportError, match="only Llama-architecture"):
        export_gguf(src, tmp_path / "x.gguf")
    (src / "tokenizer.json").unlink()
    with pytest.raises(GGUFExportError, match="no tokenizer.json"):
        export_gguf(src, tmp_path / "x.gguf")
    with pytest.raises(GGUFExportError, match="unknown type"):
        export_gguf(src, tmp_path / "x.gguf", "q4_k")


def test_character_vocabulary_is_written_in_gpt2_byte_symbols(tmp_path):
    src, _, vocab = _tiny_llama(tmp_path)
    path = export_gguf(src, tmp_path / "t.gguf", "f16")
    field = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    assert tokens[vocab["\n"]] == "Ċ" and tokens[vocab[" "]] == "Ġ" and tokens[vocab["#"]] == "#"
    assert tokens[vocab["</s>"]] == "</s>"


def test_a_character_vocabulary_gets_a_merges_list_and_bos_like_the_student(tmp_path):
    # llama.cpp refuses a BPE vocabulary with no merges, and the student always starts with <s>
    src, _, vocab = _tiny_llama(tmp_path)
    path = export_gguf(src, tmp_path / "s.gguf", "f16")
    info = read_gguf_summary(path)
    assert info["merges"] >= 1
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.ggml.add_bos_token"]
    assert bool(field.parts[field.data[0]][0]) is True
    merge = reader.fields["tokenizer.ggml.merges"]
    first = bytes(merge.parts[merge.data[0]]).decode()
    assert all(part in vocab for part in first.split(" "))  # made of tokens that exist
