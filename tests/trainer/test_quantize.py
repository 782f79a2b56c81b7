"""Merging LoRA adapters, int8 dynamic quantization, and the 1-point validity rule."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainer.errors import TrainerError  # noqa: E402
from generator.local.quantize import quantize_int8  # noqa: E402
from trainer.quantize import merge_lora, quantization_verdict  # noqa: E402


def _base(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *"#.@>\n"])}
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    d = tmp_path / "base"
    model.save_pretrained(str(d), safe_serialization=True)
    Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>")).save(str(d / "tokenizer.json"))
    return d, model


def test_lora_adapters_are_merged_into_a_plain_folder(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir, base = _base(tmp_path)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))
    (adapter / "tokenizer.json").write_bytes((base_dir / "tokenizer.json").read_bytes())
    out = merge_lora(adapter, tmp_path / "merged")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    ids = torch.tensor([[1, 4, 5, 4, 6]])
    peft_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft_model(ids).logits, atol=1e-4, rtol=1e-4)
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_pickled_adapters_are_never_read(tmp_path):
    from peft import LoraConfig, get_peft_model

    base_dir, base = _base(tmp_path)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter), safe_serialization=False)
    assert (adapter / "adapter_model.bin").is_file()
    with pytest.raises(TrainerError, match="adapter_model.safetensors"):
        merge_lora(adapter, tmp_path / "merged")
    assert not (tmp_path / "merged" / "model.safetensors").exists()


def test_plain_folder_is_copied_and_incomplete_is_refused(tmp_path):
    base_dir, _ = _base(tmp_path)
    out = merge_lora(base_dir, tmp_path / "copy")
    assert (out / "model.safetensors").read_bytes() == (base_dir / "model.safetensors").read_bytes()
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainerError, match="did not yield config.json"):
        merge_lora(tmp_path / "empty", tmp_path / "nothing")


def test_int8_quantized_model_agrees_with_fp32(tmp_path):
    _, model = _base(tmp_path)
    model.eval()
    ids = torch.randint(4, 9, (4, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids).logits
        q = quantize_int8(model)
        got = q(ids).logits
    assert "DynamicQuantizedLinear" in repr(q)
    agree = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agree > 0.9


def test_a_drop_of_more_than_one_point_blocks_promotion():
    assert quantization_verdict(0.92, 0.915).ok
    v = quantization_verdict(0.92, 0.90)
    assert not v.ok and "not promoted" in v.reason()
    assert quantization_verdict(0.5, 0.6).ok  # better is fine
