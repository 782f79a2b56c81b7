"""GGUF students served from a worker process (ctransformers): crash isolation, bad files, same tokens as torch."""

from __future__ import annotations

import importlib.util
import os

import pytest

from generator.errors import BackendError, ModelLoadError

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")
pytest.importorskip("transformers")

from generator.local import gguf_worker  # noqa: E402
from generator.local.gguf_worker import GGUFBackend, GGUFWorker, runtime_available  # noqa: E402

needs_runtime = pytest.mark.skipif(
    not runtime_available("ctransformers"),
    reason="ctransformers is not installed (pip install 'dungeon-forge[gguf]'); GGUF serving is optional",
)

SPEC = {"width": 18, "height": 12, "difficulty": 3, "enemies": 2, "items": 1, "theme": "crypt"}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny untrained Llama with the character tokenizer, exported to GGUF f32 and q8_0 beside its weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from generator.local.codec import LEVEL_FORM, encode_example
    from generator.local.gguf import export_gguf
    from trainer.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("gguf-student")
    rows = ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16]
    level = {"rows": rows, "spawn": {"x": 1, "y": 1}, "exit": {"x": 9, "y": 9}, "enemies": [], "items": []}
    tok = train_tokenizer([encode_example(LEVEL_FORM, {**SPEC, "width": 16, "enemies": 0, "items": 0}, level)])
    # initializer_range 0.2: an untrained model with clear preferences, so greedy choices have no near-ties
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, max_position_embeddings=1024,
                      initializer_range=0.2, tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(str(out), safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    for qtype in ("f32", "q8_0"):
        export_gguf(out, out / f"student-{qtype}.gguf", qtype)
    return out


@pytest.fixture(scope="module")
def worker(student):
    if not runtime_available("ctransformers"):
        pytest.skip("ctransformers is not installed (pip install 'dungeon-forge[gguf]')")
    with GGUFWorker(student / "student-f32.gguf", timeout_s=120) as w:
        yield w


def test_missing_runtime_is_a_clear_load_error(student, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(gguf_worker.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ctransformers" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install 'dungeon-forge\[gguf\]'"):
        GGUFWorker(student / "student-f32.gguf")


@needs_runtime
def test_greedy_tokens_match_the_torch_student(worker, student):
    from generator.local.student import LocalStudent

    torch_out = LocalStudent.load(student, quantize=None).generate({"spec": SPEC}, seed=0, temperature=0)
    gguf_out = worker.generate({"spec": SPEC}, seed=0, temperature=0)
    assert gguf_out.text == torch_out.text
    assert gguf_out.result is not None and gguf_out.result["rows"] == torch_out.result["rows"]
    assert gguf_out.mean_logprob == pytest.approx(torch_out.mean_logprob, abs=1e-3)
    assert gguf_out.tokens == torch_out.tokens and gguf_out.forced_tokens == torch_out.forced_tokens


@needs_runtime
def test_q8_0_file_gives_nearly_the_same_greedy_level(student):
    from generator.local.student import LocalStudent

    torch_out = LocalStudent.load(student, quantize=None).generate({"spec": SPEC}, seed=0, temperature=0)
    torch_rows = torch_out.result["rows"]
    with GGUFWorker(student / "student-q8_0.gguf", timeout_s=120) as w:
        rows = w.generate({"spec": SPEC}, seed=0, temperature=0).result["rows"]
    same = sum(a == b for r, t in zip(rows, torch_rows, strict=True) for a, b in zip(r, t, strict=True))
    assert same / (SPEC["width"] * SPEC["height"]) >= 0.9


@needs_runtime
def test_sampled_levels_decode_are_seeded_and_carry_a_confidence(worker):
    a, b = worker.generate_levels({"spec": SPEC}, 2, seed=5)
    again = worker.generate({"spec": SPEC}, seed=5)
    for out in (a, b):
        assert out.result is not None, out.error
        assert len(out.result["rows"]) == SPEC["height"] and len(out.result["enemies"]) == SPEC["enemies"]
        assert out.mean_logprob < 0 and out.forced_tokens > 0
    assert a.text != b.text  # two candidates, two samples
    assert again.text == a.text  # the same seed gives the same level


@pytest.mark.slow
@needs_runtime
def test_crash_during_generation_is_an_error_and_a_new_worker_serves_the_next_request(student):
    with GGUFWorker(student / "student-f32.gguf", timeout_s=120, test_hooks=True) as w:
        first_pid = w.pid
        w.inject_fault(crash_after_tokens=40)
        first_tmp = w._cfg["tmp"]
        with pytest.raises(BackendError, match="exited with code 70 while generating.*a new worker is starting"):
            w.generate({"spec": SPEC}, seed=1)
        assert not os.path.exists(first_tmp)  # the dead worker's copy of the model is gone
        assert w.pid != first_pid and w.restarts == 1
        out = w.generate({"spec": SPEC}, seed=1)
        assert out.result is not None and w.crashes == 0

        w.inject_fault(hang_s=600)
        with pytest.raises(BackendError, match="timed out"):
            w.generate({"spec": SPEC}, seed=2, timeout_s=1.0)
        assert w.generate({"spec": SPEC}, seed=2).result is not None and w.restarts == 2

        w.max_restarts = 0  # the next crash is one too many
        w.inject_fault(crash_after_tokens=0)
        with pytest.raises(BackendError, match="giving up after 1 crashes"):
            w.generate({"spec": SPEC}, seed=3)
        with pytest.raises(BackendError, match="gave up"):
            w.generate({"spec": SPEC}, seed=3)
        w.restart()
        assert w.generate({"spec": SPEC}, seed=3).result is not None
    with pytest.raises(BackendError, match="is closed"):
        w.generate({"spec": SPEC}, seed=3)


@needs_runtime
def test_game_gets_a_valid_level_when_the_worker_crashes(student, tmp_path):
    from engine.core.level import LevelSpec
    from generator.backends import ProceduralBackend
    from generator.facade import LevelGenerator

    backend = GGUFBackend(student / "student-f32.gguf", batch=1, max_tries=1, timeout_s=120, test_hooks=True)
    gen = LevelGenerator([backend, ProceduralBackend()], store=False, data_dir=tmp_path, max_attempts=1)
    try:
        backend.worker.inject_fault(crash_after_tokens=10)
        got = gen.get_level(LevelSpec(**SPEC), seed=3)
        assert got.backend == "procedural" and got.level.width == SPEC["width"]
        assert backend.worker.restarts == 1
        gen.get_level(LevelSpec(**SPEC), seed=4)  # the restarted worker answers (valid or not)
        assert backend.worker.crashes == 0
    finally:
        gen.close()
        backend.close()


@needs_runtime
def test_bad_files_are_clear_load_errors(student, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        GGUFWorker(tmp_path / "nothing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a model" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        GGUFWorker(junk)
    good = (student / "student-q8_0.gguf").read_bytes()
    cut = tmp_path / "truncated.gguf"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        GGUFWorker(cut, tokenizer=student / "tokenizer.json")


@needs_runtime
def test_native_crash_while_loading_is_a_load_error(student):
    with pytest.raises(ModelLoadError, match="killed by signal 11 while loading"):
        GGUFWorker(student / "student-f32.gguf", test_hooks=True, _crash_on_load=True)


@needs_runtime
def test_vocabulary_this_runtime_would_crash_on_is_refused(tmp_path):
    """ctransformers' llama.cpp segfaults on a vocabulary without a newline; the worker says so first."""
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM

    from generator.local.gguf import export_gguf

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", "#", "."])}
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(str(tmp_path), safe_serialization=True)
    Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>")).save(str(tmp_path / "tokenizer.json"))
    path = export_gguf(tmp_path, tmp_path / "s.gguf", "f32")
    with pytest.raises(ModelLoadError, match="no newline token"):
        GGUFWorker(path)


@pytest.mark.skipif(not runtime_available("llama_cpp"), reason="llama-cpp-python is not installed (no wheel; optional)")
def test_current_llama_cpp_reads_the_export_as_written(student):
    from generator.local.student import LocalStudent

    torch_out = LocalStudent.load(student, quantize=None).generate({"spec": SPEC}, seed=0, temperature=0)
    with GGUFWorker(student / "student-f32.gguf", runtime="llama_cpp", timeout_s=120) as w:
        assert w.info["runtime"] == "llama_cpp"
        assert w.generate({"spec": SPEC}, seed=0, temperature=0).text == torch_out.text
