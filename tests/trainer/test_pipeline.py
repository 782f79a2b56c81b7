"""End to end on the CPU in seconds: store -> dataset -> train a micro model -> merge/int8 -> GGUF ->
evaluate -> registry -> promote; then a second version, rollback, resume after a crash, and the CLI."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from generator import train as train_cli  # noqa: E402
from generator.store.callsite import LEVEL_SITE  # noqa: E402
from generator.local.registry import Registry  # noqa: E402
from trainer import pipeline  # noqa: E402
from trainer.config import load_preset  # noqa: E402
from trainer.errors import TrainerError  # noqa: E402
from tests.fakes.recorded_levels import fill as _fill  # noqa: E402

pytestmark = pytest.mark.slow


def test_end_to_end_train_register_promote_rollback(_forge_home):
    _fill(_forge_home)
    cfg = load_preset("tiny-test")
    report = pipeline.run(cfg, data_dir=_forge_home)
    h = report.headline()
    for key in pipeline.HEADLINE:
        assert key in h
    assert h["site"] == LEVEL_SITE and h["version"] == "v0001" and h["promoted"] is True and h["base"] == "micro"
    assert h["train_examples"] + h["heldout_examples"] == 30 and h["tokens_per_s"] > 0
    assert 0.0 <= h["validity"] <= 1.0 and h["quantized_validity"] is not None
    from generator.local.gguf_worker import runtime_available

    # the GGUF artefact the game would serve is judged too, where a runtime can serve it
    assert (h["gguf_validity"] is not None) == runtime_available()
    reg = Registry(_forge_home / "models")
    cur = reg.current(LEVEL_SITE)
    assert cur.version == "v0001" and cur.state == "current" and cur.preset == "tiny-test"
    assert {"model.safetensors", "config.json", "tokenizer.json", "student-f16.gguf", "student-q8_0.gguf"} <= set(cur.files)
    assert cur.dataset_hash == report.stages["dataset"]["hash"] and cur.dataset_size == h["train_examples"]
    assert "validity_lower95" in cur.metrics and "controllability" in cur.metrics
    # the sizes and counts it was trained on: routing serves it only inside them
    from trainer.dataset import load_exported

    whole = [ex.args["spec"] for ex in load_exported(report.run_dir / "dataset").train if len(ex.text) + 2 <= cfg.train.max_len]
    assert whole and cur.metrics["spec_ranges"]["width"] == [min(s["width"] for s in whole), max(s["width"] for s in whole)]
    assert set(cur.metrics["spec_ranges"]) == {"width", "height", "enemies", "items", "area"}
    reg.verify(LEVEL_SITE, "v0001")
    assert (report.run_dir / "report.md").read_text().startswith("# Training run")
    assert json.loads((report.run_dir / "report.json").read_text())["version"] == "v0001"

    # the served artefact loads through the runtime the game uses
    from generator.local.student import LocalStudent

    student = LocalStudent.load(reg.model_dir(LEVEL_SITE), quantize="int8")
    assert student.site == LEVEL_SITE

    second = pipeline.run(load_preset("tiny-test", overrides=["train.seed=1"]), data_dir=_forge_home)
    assert second.headline()["version"] == "v0002" and second.headline()["promoted"]
    assert reg.get(LEVEL_SITE, "v0002").parent == "v0001"
    assert reg.rollback(LEVEL_SITE).version == "v0001"


def test_failing_gates_register_but_do_not_promote(_forge_home):
    _fill(_forge_home)
    cfg = load_preset("tiny-test", overrides=["gates.min_validity=1.0", "gates.min_validity_lower95=0.99"])
    report = pipeline.run(cfg, data_dir=_forge_home)
    reg_stage = report.stages["register"]
    assert reg_stage["promoted"] is False and reg_stage["state"] == "rejected" and "validity" in reg_stage["why"]
    reg = Registry(_forge_home / "models")
    assert reg.current(LEVEL_SITE) is None and reg.versions(LEVEL_SITE)[0].state == "rejected"


def test_resume_after_a_crash_skips_finished_stages(_forge_home, monkeypatch):
    _fill(_forge_home)
    cfg = load_preset("tiny-test")

    def boom(*a, **k):
        raise RuntimeError("power cut during export")

    monkeypatch.setattr(pipeline, "_stage_export", boom)
    with pytest.raises(RuntimeError):
        pipeline.run(cfg, data_dir=_forge_home)
    run_dir = pipeline.latest_unfinished_run(_forge_home / "runs")
    assert run_dir is not None and (run_dir / "stages" / "train.json").is_file()
    monkeypatch.undo()

    def no_training(*a, **k):
        raise AssertionError("train stage ran again")

    monkeypatch.setattr(pipeline, "_stage_train", no_training)
    report = pipeline.run(load_preset("quick"), data_dir=_forge_home, resume=True)  # saved config wins
    assert report.run_dir == run_dir and report.config.name == "tiny-test"
    assert report.headline()["version"] == "v0001"
    with pytest.raises(TrainerError, match="no unfinished run"):
        pipeline.run(cfg, data_dir=_forge_home, resume=True)


def test_cli_json_prints_the_headline(_forge_home, capsys):
    _fill(_forge_home)
    assert train_cli.main(["--preset", "tiny-test", "--json", "--no-promote"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in pipeline.HEADLINE:
        assert key in out
    assert out["promoted"] is False and out["version"] == "v0001"
    assert "gates passed; not promoted" in out["registry"]["why"]
    # --if-needed: nothing new since v0001, so nothing happens
    assert train_cli.main(["--preset", "tiny-test", "--if-needed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trained"] is False


def _local_base(tmp_path):
    """A 'pretrained' Llama on disk (built from config) with its own tokenizer, like a TinyLlama folder."""
    from transformers import LlamaForCausalLM

    from trainer.model import micro_config
    from trainer.tokenizer import train_tokenizer

    tok = train_tokenizer([], kind="char")
    model = LlamaForCausalLM(micro_config("micro-1m", tok.get_vocab_size()))
    base = tmp_path / "tiny-base"
    model.save_pretrained(str(base), safe_serialization=True)
    tok.save(str(base / "tokenizer.json"))
    return base


def test_lora_on_a_local_base_registers_adapters_and_one_merged_gguf(_forge_home, tmp_path):
    _fill(_forge_home)
    base = _local_base(tmp_path)
    cfg = load_preset("tiny-test", overrides=[f"train.base={base}"])
    assert cfg.train.lora is True
    report = pipeline.run(cfg, data_dir=_forge_home)
    reg = Registry(_forge_home / "models")
    m = reg.get(LEVEL_SITE, report.headline()["version"])
    assert m.base == "tiny-base" and "student-q8_0.gguf" in m.files
    # adapters only (the base is not copied), merged once into the GGUF files
    assert {"adapter_model.safetensors", "student_base.json"} <= set(m.files) and "model.safetensors" not in m.files
    vdir = reg.model_dir(LEVEL_SITE, m.version)
    assert (vdir / "adapter_model.safetensors").stat().st_size < (base / "model.safetensors").stat().st_size / 2
    from generator.local.student import LocalStudent

    student = LocalStudent.load(vdir, quantize="int8", site=LEVEL_SITE)
    assert not any("lora" in n for n, _ in student.model.named_parameters())


def test_two_process_launch_trains_once_with_ddp(_forge_home):
    """The multi-GPU recipe (`accelerate launch --multi_gpu ...`) on the CPU: two gloo ranks, one run, one report."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _fill(_forge_home)
    env = {**os.environ, "FORGE_HOME": str(_forge_home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "generator.train", "--preset", "tiny-test", "--json"],
        cwd=Path(__file__).parents[2], env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # only the main rank reports
    out = json.loads(lines[0])
    assert out["version"] == "v0001"
    runs = list((_forge_home / "runs").glob("*/model/trainer_state.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["world_size"] == 2


def test_crash_between_register_and_promote_does_not_register_twice(_forge_home, monkeypatch):
    _fill(_forge_home)
    real_promote = Registry.promote

    def crash(self, site, version):
        raise RuntimeError("killed before promote")

    monkeypatch.setattr(Registry, "promote", crash)
    with pytest.raises(RuntimeError):
        pipeline.run(load_preset("tiny-test"), data_dir=_forge_home)
    monkeypatch.setattr(Registry, "promote", real_promote)
    report = pipeline.run(load_preset("tiny-test"), data_dir=_forge_home, resume=True)
    reg = Registry(_forge_home / "models")
    assert [m.version for m in reg.versions(LEVEL_SITE)] == ["v0001"]
    assert report.headline()["promoted"] and reg.current(LEVEL_SITE).version == "v0001"
