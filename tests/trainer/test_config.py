"""Presets load into typed configs; typos are errors that name the key."""

from __future__ import annotations

import pytest

from trainer.config import PipelineConfig, PresetError, load_preset, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads(name):
    cfg = load_preset(name)
    assert isinstance(cfg, PipelineConfig) and cfg.name == name
    assert cfg.train.steps > 0 and 0 < cfg.dataset.heldout_fraction < 1
    # every preset exports the q8_0 file a runtime serves; smollm2 keeps it as its one merged copy
    assert "q8_0" in cfg.quantize.gguf_types and ("f16" in cfg.quantize.gguf_types or name == "smollm2")
    assert 0 <= cfg.gates.min_validity_lower95 <= cfg.gates.min_validity <= 1 or name == "tiny-test"


def test_expected_presets_exist():
    assert {"tiny-test", "quick", "standard"} <= set(preset_names())


def test_overrides_are_typed():
    cfg = load_preset("quick", overrides=["train.steps=7", "train.bf16=false", "dataset.bootstrap_width=[20, 30]"])
    assert cfg.train.steps == 7 and cfg.train.bf16 is False and cfg.dataset.bootstrap_width == (20, 30)
    cfg = load_preset("quick", overrides={"gates.min_validity": 0.25})
    assert cfg.gates.min_validity == 0.25


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stpes=5", r"unknown key\(s\) stpes; known: .*steps"),
        ("trian.steps=5", r"unknown key\(s\) trian"),
        ("train.steps=many", r"train.steps: expected an integer, got 'many'"),
        ("train.bf16=3", r"train.bf16: expected true/false"),
        ("nonsense", r"expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(PresetError, match=message):
        load_preset("quick", overrides=[override])


def test_unknown_preset_lists_known(tmp_path):
    with pytest.raises(PresetError, match="known presets: .*quick"):
        load_preset("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n  colour: red\n")
    with pytest.raises(PresetError, match=r"bad.yaml: train: unknown key\(s\) colour"):
        load_preset(bad)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_makes_a_training_loop_config(name):
    from trainer.model import MICRO_PRESETS

    from trainer.loop import TrainConfig

    cfg = load_preset(name)
    tc = cfg.train
    assert isinstance(tc, TrainConfig) and tc.steps and tc.max_len > 0  # the preset's section is the loop's config
    assert tc.model_preset in MICRO_PRESETS
    import yaml

    from trainer.config import PRESETS_DIR

    pinned = (yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text()).get("train") or {}).get("lora")
    if pinned is not None:  # wide-tall continues a micro student from its folder: trained whole, as it says
        assert tc.lora is pinned and load_preset(name, overrides=["train.base=tinyllama"]).train.lora is pinned
        return
    assert tc.lora is (cfg.train.base != "micro")  # micro trains every weight; a pretrained base adapters
    assert load_preset(name, overrides=["train.base=tinyllama"]).train.lora is True
