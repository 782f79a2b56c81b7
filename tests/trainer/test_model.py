"""Student model construction: micro presets, LoRA/QLoRA, and a missing base."""

from __future__ import annotations

import pytest

from trainer.errors import BaseModelMissing, TrainerError
from trainer.model import MICRO_PRESETS, build_model, count_parameters, micro_config, resolve_base


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("preset", "lo", "hi"), [("micro-1m", 0.5e6, 1.5e6), ("micro-5m", 3e6, 7e6),
                                                  ("micro-30m", 20e6, 40e6)])
def test_every_micro_preset_has_the_size_its_name_says(preset, lo, hi):
    import torch
    from transformers import LlamaForCausalLM

    config = micro_config(preset, vocab_size=110)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert lo <= count_parameters(model) <= hi
    assert config.hidden_size % 64 == 0  # 4-bit layers on the CPU need it


def test_all_presets_are_covered():
    assert set(MICRO_PRESETS) == {"micro-1m", "micro-5m", "micro-30m"}


def test_micro_model_is_seeded_and_trains_a_step():
    import torch

    a = build_model("micro", "micro-1m", vocab_size=64, seed=3)
    b = build_model("micro", "micro-1m", vocab_size=64, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    x = torch.randint(0, 64, (2, 16))
    loss = a(input_ids=x, labels=x).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_lora_trains_only_attention_adapters():
    model = build_model("micro", "micro-1m", vocab_size=64, lora=True, lora_r=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_qlora_loads_the_frozen_base_in_4bit_nf4_on_the_cpu():
    import torch

    bnb = pytest.importorskip("bitsandbytes")
    model = build_model("micro", "micro-1m", vocab_size=64, qlora=True, lora_r=4)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    assert q_proj.base_layer.weight.quant_state.quant_type == "nf4"
    x = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=x, labels=x).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_missing_tinyllama_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("FORGE_TINYLLAMA", raising=False)
    with pytest.raises(BaseModelMissing, match="--base micro"):
        resolve_base("tinyllama")
    monkeypatch.setenv("FORGE_TINYLLAMA", str(tmp_path))
    with pytest.raises(BaseModelMissing, match="config.json"):
        resolve_base("tinyllama")


def test_a_local_path_base_loads(tmp_path):
    build_model("micro", "micro-1m", vocab_size=64).save_pretrained(tmp_path, safe_serialization=True)
    assert resolve_base(str(tmp_path)) == tmp_path
    model = build_model(str(tmp_path), lora=True, lora_r=2)
    assert count_parameters(model, trainable=True) > 0
    with pytest.raises(BaseModelMissing, match="--base micro"):
        build_model(str(tmp_path / "nowhere"))


def test_unknown_preset_and_missing_vocab_are_clear():
    with pytest.raises(TrainerError, match="micro-5m"):
        micro_config("micro-9b", 10)
    with pytest.raises(TrainerError, match="vocab_size"):
        build_model("micro", "micro-1m")
