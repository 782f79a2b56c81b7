"""A model directory whose config.json asks for absurd sizes is refused before anything is allocated
(issue 15, item 5): the error names config.json and the field, and comes at once."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from generator.errors import ModelLoadError  # noqa: E402
from generator.local.student import LocalStudent  # noqa: E402


@pytest.fixture
def model_copy(tiny_student_dir, tmp_path):
    out = tmp_path / "student"
    shutil.copytree(tiny_student_dir, out)
    return out


def set_config(model_dir, **changes):
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))
    return cfg


def load_refused(model_dir, match):
    with pytest.raises(ModelLoadError, match=match) as err:
        LocalStudent.load(model_dir, quantize=None)
    # refused by the config check, before torch allocated anything
    assert "config.json" in str(err.value) and "model.safetensors could not" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(("field", "value"), [("hidden_size", 10**9), ("vocab_size", 10**9),
                                              ("intermediate_size", 10**9), ("num_attention_heads", 0),
                                              ("hidden_size", -4), ("hidden_size", "64"), ("hidden_size", 64.5),
                                              ("max_position_embeddings", 10**12)])
def test_out_of_bounds_dimension_is_refused_naming_file_and_field(model_copy, field, value):
    set_config(model_copy, **{field: value})
    msg = load_refused(model_copy, field)
    assert field in msg and (repr(value)[:12] in msg.replace(",", "") or f"{value!r:.40}" in msg)


def test_a_million_layers_is_refused_at_once(model_copy):
    set_config(model_copy, num_hidden_layers=10**6)
    load_refused(model_copy, "num_hidden_layers")


def test_dimensions_that_disagree_with_the_weights_are_refused(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    set_config(model_copy, hidden_size=cfg["hidden_size"] * 2)
    msg = load_refused(model_copy, "hidden_size")
    assert "model.safetensors" in msg and "shape" in msg


def test_more_layers_than_the_weights_hold_is_refused(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    set_config(model_copy, num_hidden_layers=cfg["num_hidden_layers"] + 3)
    msg = load_refused(model_copy, "num_hidden_layers")
    assert f"{cfg['num_hidden_layers']} layers" in msg


def test_a_sane_config_still_loads(model_copy):
    assert LocalStudent.load(model_copy, quantize=None).max_positions > 0


def test_config_json_that_is_not_a_regular_file_is_refused(model_copy):
    (model_copy / "config.json").unlink()
    (model_copy / "config.json").symlink_to("/dev/zero")
    load_refused(model_copy, "not a regular file")


def test_a_training_base_with_absurd_sizes_is_refused(model_copy):
    from trainer.errors import BaseModelMissing
    from trainer.model import build_model

    set_config(model_copy, num_hidden_layers=10**6)
    with pytest.raises(BaseModelMissing, match="num_hidden_layers"):
        build_model(str(model_copy))
