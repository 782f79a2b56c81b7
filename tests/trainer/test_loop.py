"""The training loop end to end on a tiny model: artefacts, resume, adapters, accelerate."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer.errors import TrainerError
from trainer.loop import TrainConfig, read_result, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = Path(__file__).resolve().parents[2]


def _texts(n: int = 24) -> list[str]:
    out = []
    for i in range(n):
        w = 16 + i % 3
        rows = ["#" * w] + ["#" + ("." * (w - 2)) + "#"] * 10 + ["#" * w]
        out.append(f"L {w}x12 d1 e0 i0 crypt\n" + "".join(f"{y:02d}00003{r}\n" for y, r in enumerate(rows)))
    return out


def _cfg(**kw) -> TrainConfig:
    base = dict(model_preset="micro-1m", steps=8, batch_size=4, warmup_steps=2, eval_every=4, checkpoint_every=3,
                bf16=False, seed=1, torch_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_safetensors_config_tokenizer_and_state(tmp_path):
    out = train(_cfg(), _texts(), _texts(4), tmp_path / "run", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "trainer_state.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)
    assert "checkpoint" not in names  # a completed run cleans its checkpoint up
    result = read_result(out)
    assert result.completed and result.step == 8
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.eval_loss is not None and result.tokens_per_s > 0
    # a second call with the same config finds the finished run and does nothing
    before = (out / "model.safetensors").stat().st_mtime_ns
    train(_cfg(), _texts(), _texts(4), out, progress=False)
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_an_interrupted_run_resumes_to_the_same_loss(tmp_path):
    straight = read_result(train(_cfg(), _texts(), [], tmp_path / "a", progress=False))

    def crash(step, _loss):
        if step == 5:  # after the step-3 checkpoint: steps 4 and 5 are lost and redone
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(_cfg(), _texts(), [], tmp_path / "b", progress=False, on_step=crash)
    assert json.loads((tmp_path / "b" / "checkpoint" / "trainer_state.json").read_text())["step"] == 3
    resumed = read_result(train(_cfg(), _texts(), [], tmp_path / "b", progress=False))
    assert resumed.step == straight.step == 8
    assert resumed.train_loss == pytest.approx(straight.train_loss, rel=1e-4)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-4)


def test_ctrl_c_writes_a_checkpoint_first(tmp_path):
    def stop(step, _loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), _texts(), [], tmp_path, progress=False, on_step=stop)
    assert json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["step"] == 2


def test_resuming_with_another_config_is_refused(tmp_path):
    with pytest.raises(RuntimeError):
        train(_cfg(), _texts(), [], tmp_path, progress=False,
              on_step=lambda s, _l: (_ for _ in ()).throw(RuntimeError("stop")) if s == 4 else None)
    with pytest.raises(TrainerError, match="another config"):
        train(_cfg(lr=1e-4), _texts(), [], tmp_path, progress=False)


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
def test_adapter_runs_save_a_plain_merged_model(tmp_path, adapter):
    from transformers import LlamaForCausalLM

    if adapter == "qlora":
        pytest.importorskip("bitsandbytes")
    cfg = _cfg(steps=3, lora=adapter == "lora", qlora=adapter == "qlora", lr=1e-2, bf16=True)
    out = train(cfg, _texts(8), [], tmp_path, progress=False)
    model = LlamaForCausalLM.from_pretrained(out, use_safetensors=True)
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_config_from_dict_refuses_unknown_fields():
    assert TrainConfig.from_dict({"steps": 5}).steps == 5
    with pytest.raises(TrainerError, match="stpes"):
        TrainConfig.from_dict({"stpes": 5})


@pytest.mark.slow
def test_runs_under_accelerate_launch_on_the_cpu(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_loop import _cfg, _texts
        from trainer.loop import train
        train(_cfg(steps=2), _texts(8), [], {str(tmp_path / "out")!r}, progress=False)
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_right_padded_batches_need_no_attention_mask():
    """The loop calls the model without the mask: for right padding under causal attention that is exact."""
    import torch

    from trainer.loop import _collate, _model_inputs
    from trainer.model import build_model

    model = build_model("micro", "micro-1m", vocab_size=40, seed=2).eval()
    seqs = [torch.randint(4, 40, (n,)).numpy() for n in (23, 9, 17)]
    batch = _collate(seqs, pad_id=0)
    assert int(batch["attention_mask"].sum()) == 23 + 9 + 17
    with torch.no_grad():
        masked = model(**batch)
        unmasked = model(**_model_inputs(batch))
    real = batch["attention_mask"].bool()
    assert torch.allclose(masked.logits[real], unmasked.logits[real], atol=1e-5)
    assert float(masked.loss) == pytest.approx(float(unmasked.loss), rel=1e-5)


def test_adamw_is_fused_unless_switched_off():
    from trainer.loop import _optimizer
    from trainer.model import build_model

    model = build_model("micro", "micro-1m", vocab_size=40)
    assert _optimizer(model, TrainConfig()).defaults["fused"] is True
    assert not _optimizer(model, TrainConfig(fused_optimizer=False)).defaults["fused"]


def test_a_checkpoint_from_before_the_throughput_fields_still_resumes():
    from trainer.loop import _same_config

    old = {k: v for k, v in _cfg().to_dict().items() if k not in ("fused_optimizer", "compile")}
    assert _same_config(old, _cfg())
    assert not _same_config(old, _cfg(compile=True))
    assert not _same_config({**old, "lr": 1.0}, _cfg())


def test_a_checkpoint_saved_under_the_loops_old_field_names_still_resumes():
    """Before the loop's config and the preset's were one, the loop saved preset / max_seq_len / time_limit_s."""
    from trainer.loop import _same_config

    cfg = _cfg(max_minutes=2.0)
    saved = cfg.to_dict()
    saved["preset"], saved["max_seq_len"], saved["time_limit_s"] = (saved.pop("model_preset"), saved.pop("max_len"),
                                                                    saved.pop("max_minutes") * 60)
    assert _same_config(saved, cfg)
    assert not _same_config({**saved, "max_seq_len": 64}, cfg)


def test_history_records_tokens_and_seconds_per_step(tmp_path):
    result = read_result(train(_cfg(steps=3, eval_every=0, checkpoint_every=0), _texts(8), [], tmp_path,
                               progress=False))
    assert all(h["tokens"] > 0 and h["seconds"] > 0 for h in result.history)


@pytest.mark.slow
def test_compiled_layers_train_like_eager_ones_and_save_plain_weights(tmp_path):
    """compile=True: the same losses (to rounding), evaluation eager, a plain model on disk."""
    from safetensors.torch import load_file

    kw = dict(steps=3, batch_size=2, eval_every=0, checkpoint_every=0)
    eager = read_result(train(_cfg(**kw), _texts(6), _texts(2), tmp_path / "eager", progress=False))
    compiled = read_result(train(_cfg(compile=True, **kw), _texts(6), _texts(2), tmp_path / "compiled",
                                 progress=False))
    assert [h["loss"] for h in compiled.history] == pytest.approx([h["loss"] for h in eager.history], rel=1e-3)
    assert compiled.eval_loss == pytest.approx(eager.eval_loss, rel=1e-3)
    names = set(load_file(str(tmp_path / "compiled" / "model.safetensors")))
    assert names == set(load_file(str(tmp_path / "eager" / "model.safetensors")))


def test_busy_waiting_threads_on_a_loaded_machine_are_pointed_out(monkeypatch, caplog):
    import os

    import torch

    from trainer.loop import _warn_if_threads_spin

    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    torch.set_num_threads(2)
    with caplog.at_level("WARNING", logger="trainer.loop"):
        _warn_if_threads_spin()
        monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
        _warn_if_threads_spin()
    assert len(caplog.records) == 1 and "OMP_WAIT_POLICY=PASSIVE" in caplog.text
