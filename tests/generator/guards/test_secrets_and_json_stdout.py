"""An API key never reaches stdout, stderr or logs, and `--json` prints one JSON object (issue 15, items 3-4).

A canary key is sent to a 127.0.0.1 server that answers 401 and echoes the
Authorization header back ("Incorrect API key provided: Bearer <key>"), the
way providers do.  byllm logs that through loguru, litellm prints banners on
stdout: none of it may show the key, and a `--json` command's stdout must
still be exactly one JSON object.  The canary has no key-like shape, so only
the environment-value redaction can catch it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import jac_support as support  # noqa: E402

fake = support.load_fake("openai_server")

ROOT = Path(__file__).resolve().parents[3]
CANARY = "forgecanary7Q2xW9vB4nL0pZ8rT6yK3m"
SPEC = json.dumps(support.SMALL_SPEC)


class EchoingServer(fake.FakeOpenAIServer):
    """Answers every call 401 and quotes the Authorization header it got."""

    def __init__(self) -> None:
        super().__init__(self._reply)

    def _reply(self, body):
        return fake.Reply.error(401, f"Incorrect API key provided: {self.auth_headers[-1]}")


@pytest.fixture
def echoing():
    with EchoingServer() as server:
        yield server


def _env(server, home: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": server.url, "FORGE_HOME": str(home),
            "PYTHONPATH": str(ROOT), "FORGE_TEACHER": "gpt-4o-mini", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert CANARY[-12:] not in text


def one_json_object(stdout: str) -> dict:
    doc, end = json.JSONDecoder().raw_decode(stdout.strip())
    assert stdout.strip()[end:].strip() == "", f"more than one JSON object on stdout: {stdout[:300]!r}"
    assert isinstance(doc, dict)
    return doc


def test_python_api_never_prints_or_logs_the_key(echoing, monkeypatch, _forge_home, capfd, caplog):
    from generator.backends.teacher import LLMTeacherBackend
    from generator.facade import LevelGenerator
    from generator.settings import TeacherConfig
    from engine.core.level import LevelSpec

    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    teacher = LLMTeacherBackend(TeacherConfig(model="gpt-4o-mini", base_url=echoing.url, timeout_s=5.0,
                                              max_retries=0))
    with caplog.at_level(logging.DEBUG):
        with LevelGenerator([teacher], max_attempts=2, data_dir=_forge_home) as gen:
            got = gen.generate(LevelSpec(**support.SMALL_SPEC), seed=1)
            rows = [c.record for c in gen.store.iter_calls()]
    assert got.backend == "procedural" and echoing.auth_headers[0] == f"Bearer {CANARY}"  # the key was sent
    out, err = capfd.readouterr()
    _no_canary(out, err, caplog.text, *(json.dumps(r.error or "") + (r.raw_output or "") for r in rows))
    assert "Give Feedback" not in out + err  # litellm's banner is off


def test_generate_json_cli_one_object_no_key(echoing, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "generator.generate", "--backend", "llm", "--spec", SPEC,
                           "--json", "--max-attempts", "1"], cwd=ROOT, env=_env(echoing, tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(echoing.requests) >= 1
    _no_canary(proc.stdout, proc.stderr)
    doc = one_json_object(proc.stdout)
    assert doc["levels"][0]["backend"] == "procedural"
    assert "Give Feedback" not in proc.stdout + proc.stderr


def test_game_json_one_object_no_key_when_the_teacher_errors(echoing, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "games.sample_dungeon", "--headless", "--sessions", "1",
                           "--levels-per-session", "1", "--max-turns", "50", "--json", "--no-background-train"],
                          cwd=ROOT, env={**_env(echoing, tmp_path), "ARCADE_HEADLESS": "1"},
                          capture_output=True, text=True, timeout=400)
    assert len(echoing.requests) >= 1, proc.stderr[-2000:]
    _no_canary(proc.stdout, proc.stderr)
    doc = one_json_object(proc.stdout)
    assert doc.get("levels_played", doc.get("sessions")) is not None or doc
