"""Generic sites' students behind llama.cpp's own OpenAI-compatible server (and vLLM where a GPU is present)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from generator.errors import BackendError, GeneratorError
from generator.llama_server import CONFIG_NAME, main, render_prompt, tokenizer_config, write_server_config
from generator.local.codec import encode_prompt

SITE = "app.story:write_quest#12345678"
ARGS = {"town": "Bree", "hero": {"name": "Ann", "level": 3}}  # not in key order: the client sorts, as documented
#: The site's output schema, small enough that an untrained model's constrained answer ends quickly.
#: (llama-cpp-python 0.3.36's grammar ignores minimum/maximum: an untrained model wrote n=2475 for maximum 9.)
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"},
                                           "mood": {"enum": ["calm", "angry"]}},
          "required": ["ok", "n", "mood"], "additionalProperties": False}
#: What the game's clients send: the call's arguments as compact JSON in the last user message.
MESSAGES = [{"role": "system", "content": "ignored"},
            {"role": "user", "content": json.dumps(ARGS, separators=(",", ":"), sort_keys=True)}]


def test_the_chat_template_rebuilds_the_prompt_the_student_was_trained_on():
    assert render_prompt(MESSAGES) == "<s>" + encode_prompt(SITE, ARGS)
    cfg = tokenizer_config()  # llama-cpp-python asserts these three keys are strings
    assert all(isinstance(cfg[k], str) for k in ("chat_template", "bos_token", "eos_token"))
    assert cfg["eos_token"] == "\n"  # its stop string: the student's answer ends at its newline


@pytest.fixture(scope="module")
def generic_home(tmp_path_factory):
    """A data dir with an untrained micro-1m student promoted for a generic site (its tokenizer knows JSON)."""
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from generator.local.codec import encode_example
    from generator.local.registry import Registry
    from trainer.model import build_model
    from trainer.tokenizer import train_tokenizer

    home = tmp_path_factory.mktemp("llama_home")
    model_dir = home / "student"
    model_dir.mkdir()
    tok = train_tokenizer([encode_example(SITE, ARGS, {"ok": True, "n": 3})])
    build_model("micro", "micro-1m", vocab_size=tok.get_vocab_size(), seed=0).save_pretrained(
        model_dir, safe_serialization=True)
    tok.save(str(model_dir / "tokenizer.json"))
    registry = Registry(home / "models")
    registry.promote(SITE, registry.add_version(SITE, model_dir, {"base": "micro", "preset": "micro-1m"}))
    return home


def test_the_config_serves_each_promoted_generic_site_under_its_id(generic_home, tmp_path):
    import gguf

    config = write_server_config(generic_home, tmp_path / "llama", port=8099)
    data = json.loads(config.read_text())
    assert (data["host"], data["port"]) == ("127.0.0.1", 8099) and len(data["models"]) == 1
    model = data["models"][0]
    assert model["model_alias"] == SITE and model["chat_format"] == "hf-tokenizer-config"
    assert json.loads(Path(model["hf_tokenizer_config_path"]).read_text()) == tokenizer_config()
    reader = gguf.GGUFReader(model["model"])  # exported from the promoted safetensors
    assert reader.get_field("general.architecture").contents() == "llama" and model["model"].endswith("-f16.gguf")
    assert "tokenizer.ggml.merges" in reader.fields  # llama.cpp refuses a vocabulary without one
    kinds = dict(zip(reader.get_field("tokenizer.ggml.tokens").contents(),
                     reader.get_field("tokenizer.ggml.token_type").contents()))
    # "<s>" in the chat template must become the BOS token, so the specials are control tokens
    assert {kinds[t] for t in ("<pad>", "<s>", "</s>", "<unk>")} == {gguf.TokenType.CONTROL}
    assert kinds["{"] == gguf.TokenType.NORMAL
    if importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("pydantic_settings"):
        from llama_cpp.server.settings import ConfigFileSettings  # the server's own validation

        assert ConfigFileSettings.model_validate_json(config.read_text()).models[0].model_alias == SITE


def test_the_level_site_and_an_empty_registry_are_refused(generic_home, tmp_path, capsys):
    from generator.store.callsite import LEVEL_SITE

    with pytest.raises(GeneratorError, match="level site"):
        write_server_config(generic_home, tmp_path, sites=[LEVEL_SITE])
    assert main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert "no generic call site has a promoted student" in capsys.readouterr().err
    assert main(["--data-dir", str(generic_home), "--out", str(tmp_path / "o"), "--port", "0"]) == 2
    assert main(["--data-dir", str(generic_home), "--out", str(tmp_path / "ok")]) == 0
    assert f"--config_file {tmp_path / 'ok' / CONFIG_NAME}" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the server did not answer {url} within {seconds:g} s:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _ask_constrained(base_url: str, model: str, response_format: dict) -> tuple[dict, object]:
    import jsonschema
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="no-key", timeout=120, max_retries=0)
    answers = []
    for seed in range(3):  # an untrained model: the schema, not the weights, makes every answer valid
        reply = client.chat.completions.create(model=model, messages=MESSAGES, seed=seed, max_tokens=64,
                                               temperature=1.0, response_format=response_format)
        result = json.loads(reply.choices[0].message.content)
        jsonschema.validate(result, SCHEMA)
        answers.append(result)
    client.close()
    return answers[-1], reply


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python[server] is not installed: it has no wheel for this platform and builds "
                           "llama.cpp from source (pip install 'dungeon-forge[llamacpp]')")
def test_llama_cpp_server_answers_schema_constrained_json_for_a_generic_student(generic_home, tmp_path):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python is installed without its [server] extra")
    port = _free_port()
    config = write_server_config(generic_home, tmp_path / "llama", port=port, n_ctx=256)
    log = tmp_path / "llama.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{port}/v1/models", proc, log, 120)
        result, reply = _ask_constrained(f"http://127.0.0.1:{port}/v1", SITE,
                                         {"type": "json_object", "schema": SCHEMA})
        assert reply.model == SITE and reply.usage.completion_tokens > 0
        assert reply.usage.prompt_tokens == len(encode_prompt(SITE, ARGS)) + 1  # <s> + one token a character
        # the game's remote client talks to it unchanged: same request, reply read the same way
        from engine.core.level import LevelSpec
        from generator.backends import BackendRequest
        from generator.backends.remote import RemoteStudentBackend

        backend = RemoteStudentBackend(f"http://127.0.0.1:{port}/v1", SITE, timeout_s=120)
        spec = LevelSpec(width=16, height=12, difficulty=1, enemies=0, items=0, theme="crypt")
        outs = []
        for seed in range(1, 4):  # an untrained model may stop at once (an empty reply is a BackendError)
            try:
                outs.append(backend.generate(BackendRequest(spec=spec, seed=seed)))
            except BackendError as exc:
                assert "no message content" in str(exc)
        assert outs and all(isinstance(o.raw, str) and o.raw and o.confidence is None for o in outs)
        backend.close()
    finally:
        _stop(proc)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(not _cuda() or importlib.util.find_spec("vllm") is None,
                    reason="vLLM is tested only on a GPU machine with vllm installed")
def test_vllm_serves_the_student_with_schema_constrained_json(generic_home, tmp_path):
    from generator.local.registry import Registry

    registry = Registry(generic_home / "models")
    model_dir = registry.model_dir(SITE, registry.current(SITE).version)
    template = tmp_path / "student_chat_template.jinja"
    template.write_text(tokenizer_config()["chat_template"])
    port = _free_port()
    log = tmp_path / "vllm.log"
    exe = shutil.which("vllm") or "vllm"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "serve", str(model_dir), "--served-model-name", SITE, "--chat-template", str(template),
             "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "256",
             "--gpu-memory-utilization", "0.2", "--enforce-eager"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"})
    try:
        _wait_for(f"http://127.0.0.1:{port}/v1/models", proc, log, 600)
        _ask_constrained(f"http://127.0.0.1:{port}/v1", SITE,
                         {"type": "json_schema", "json_schema": {"name": "result", "schema": SCHEMA}})
    finally:
        _stop(proc)
