"""The Jac teacher backend against byllm's MockLLM and a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.fakes import jac_support as support  # noqa: E402  (tests are imported from the project root)
fake = support.load_fake("openai_server")
Reply, FakeOpenAIServer = fake.Reply, fake.FakeOpenAIServer

from engine.core.level import LevelSpec  # noqa: E402
from generator import capture  # noqa: E402
from generator.backends import Backend, BackendRequest  # noqa: E402
from generator.store.callsite import LEVEL_SITE, SPEC_SITE  # noqa: E402
from generator.errors import BackendError  # noqa: E402
from generator.backends.teacher import LLMTeacherBackend, teacher_backend_from_config  # noqa: E402
from generator.settings import TeacherConfig  # noqa: E402

SPEC = LevelSpec(**support.SMALL_SPEC)
FAKE_KEY = "sk-forge-test-SECRET-0123456789abcdefXYZ"


@pytest.fixture
def records():
    seen: list = []
    previous = capture.set_record_sink(seen.append)
    yield seen
    capture.set_record_sink(previous)


def _backend(server, **cfg):
    return LLMTeacherBackend(TeacherConfig(model="gpt-4o-mini", base_url=server.url, **{"timeout_s": 5.0, **cfg}))


def test_backend_protocol_and_mock_llm(records):
    model = support.mock_llm(support.raw(support.level_json()))
    backend = LLMTeacherBackend(TeacherConfig(), model=model)
    assert isinstance(backend, Backend) and backend.name == "llm"
    out = backend.generate(BackendRequest(spec=SPEC, seed=3, feedback="V6.unreachable_exit at (14, 10)"))
    assert json.loads(out.raw) == support.SMALL_LEVEL
    assert out.model == "mockllm" and out.messages
    assert "V6.unreachable_exit" in model.seen_prompts[0]  # the feedback reached the model
    assert records[0].site == LEVEL_SITE


def test_choose_next_spec_returns_a_level_spec(records):
    model = support.mock_llm(support.raw(json.dumps({**support.SMALL_SPEC, "difficulty": 4, "enemies": 3})))
    backend = LLMTeacherBackend(TeacherConfig(), model=model)
    nxt = backend.choose_next_spec({"levels_played": 2, "levels_completed": 2, "mean_fun": 0.8}, SPEC)
    assert isinstance(nxt, LevelSpec) and nxt.difficulty == 4
    assert records[0].site == SPEC_SITE


def test_out_of_range_spec_is_a_backend_error():
    model = support.mock_llm(support.raw(json.dumps({**support.SMALL_SPEC, "width": 999})))
    with pytest.raises(BackendError, match="invalid spec"):
        LLMTeacherBackend(TeacherConfig(), model=model).choose_next_spec({}, SPEC)


def test_fake_server_valid_level_with_tokens_and_cost(records):
    with FakeOpenAIServer([Reply.ok(support.level_json(), usage=(1000, 500))]) as server:
        out = _backend(server).generate(BackendRequest(spec=SPEC, seed=1))
    assert json.loads(out.raw)["name"] == "Test Vault"
    assert (out.prompt_tokens, out.completion_tokens) == (1000, 500)
    assert out.cost_usd > 0  # gpt-4o-mini is in litellm's local price list
    body = server.requests[0]
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 4096
    assert body["response_format"]["json_schema"]["name"] == "LevelDesign"
    (rec,) = records
    assert rec.backend == "llm" and rec.valid is not None and rec.prompt_tokens == 1000


def test_malformed_json_is_handed_back_raw_for_the_validator(records):
    with FakeOpenAIServer([Reply.ok("{this is not json")]) as server:
        out = _backend(server, max_output_retries=1).generate(BackendRequest(spec=SPEC, seed=1))
    assert out.raw == "{this is not json"
    assert len(server.requests) == 2  # byllm re-asked once, as configured
    assert out.prompt_tokens == 240  # both attempts were paid for
    assert records[0].valid is False


def test_schema_breaking_json_is_recorded_invalid(records):
    with FakeOpenAIServer([Reply.ok(json.dumps({"name": "x", "rows": 7}))]) as server:
        out = _backend(server, max_output_retries=0).generate(BackendRequest(spec=SPEC, seed=1))
    assert json.loads(out.raw) == {"name": "x", "rows": 7}
    assert records[0].valid is False


def test_http_500_is_a_backend_error_after_the_configured_retries(records):
    with FakeOpenAIServer([Reply.error(500)]) as server:
        with pytest.raises(BackendError, match="InternalServerError"):
            _backend(server, max_retries=1).generate(BackendRequest(spec=SPEC, seed=1))
    assert len(server.requests) == 2
    assert records[0].error.startswith("InternalServerError")


def test_http_429_is_retried_after_retry_after():
    script = [Reply.error(429, "slow down", retry_after=0.2), Reply.ok(support.level_json())]
    with FakeOpenAIServer(script) as server:
        out = _backend(server, max_retries=1).generate(BackendRequest(spec=SPEC, seed=1))
    assert json.loads(out.raw)["name"] == "Test Vault" and len(server.requests) == 2


def test_truncated_body_is_a_backend_error():
    with FakeOpenAIServer([Reply.truncated(support.level_json())]) as server:
        with pytest.raises(BackendError):
            _backend(server, max_retries=0).generate(BackendRequest(spec=SPEC, seed=1))


def test_slow_response_times_out_within_the_deadline(records):
    with FakeOpenAIServer([Reply.ok(support.level_json(), delay_s=3.0)]) as server:
        deadline = time.monotonic() + 0.8
        with pytest.raises(BackendError, match="Timeout"):
            _backend(server, max_retries=0).generate(BackendRequest(spec=SPEC, seed=1, deadline=deadline))
    assert records[0].error.startswith("Timeout")


def test_no_call_once_the_deadline_has_passed():
    with FakeOpenAIServer() as server:
        with pytest.raises(BackendError, match="deadline"):
            _backend(server).generate(BackendRequest(spec=SPEC, seed=1, deadline=time.monotonic() - 1))
    assert server.requests == []


def test_api_key_never_leaks_into_records_logs_or_errors(monkeypatch, records, caplog, capfd):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with FakeOpenAIServer([Reply.ok(support.level_json())]) as server:
            _backend(server).generate(BackendRequest(spec=SPEC, seed=1))
        assert server.auth_headers[0] == f"Bearer {FAKE_KEY}"  # the key was really used
        with FakeOpenAIServer([Reply.error(401, "Incorrect API key provided")]) as server:
            with pytest.raises(BackendError) as caught:
                _backend(server, max_retries=0).generate(BackendRequest(spec=SPEC, seed=1))
        texts.append(str(caught.value))
        texts.append(repr(caught.value.__cause__) + repr(caught.value.__context__))
    import msgspec

    texts += [msgspec.json.encode(r).decode() for r in records]
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    assert len(records) == 2
    for text in texts:
        assert FAKE_KEY not in text
        assert FAKE_KEY[-12:] not in text


def test_teacher_is_off_without_key_or_endpoint(monkeypatch):
    assert teacher_backend_from_config(TeacherConfig(model="gpt-4o-mini")) is None
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    assert isinstance(teacher_backend_from_config(TeacherConfig(model="gpt-4o-mini")), LLMTeacherBackend)
    monkeypatch.delenv("OPENAI_API_KEY")
    local = TeacherConfig(model="openai/local-model", base_url="http://127.0.0.1:9/v1")
    assert teacher_backend_from_config(local) is not None


def test_facade_retries_the_teacher_with_gate_feedback_and_stores_one_row_per_attempt(_forge_home):
    facade = pytest.importorskip("generator.facade")
    from generator.store import Store

    rows = list(support.SMALL_LEVEL["rows"])
    rows[3] = "." + rows[3][1:]  # V2: open border
    model = support.mock_llm(support.raw(support.level_json(rows=rows)), support.raw(support.level_json()))
    gen = facade.LevelGenerator([LLMTeacherBackend(TeacherConfig(), model=model), "procedural"], deadline_s=30)
    try:
        level = gen.generate(SPEC, seed=1)
    finally:
        gen.close()
    assert level.backend == "llm" and level.attempts == 2
    assert "V2" in model.seen_prompts[1]  # the second prompt carried the validator's feedback
    with Store.open(_forge_home / "forge.db") as store:
        calls = sorted((c.record for c in store.iter_calls()), key=lambda r: r.attempt)
    assert [(c.site, c.valid, c.served) for c in calls] == [(LEVEL_SITE, False, False), (LEVEL_SITE, True, True)]
    assert all(c.messages and c.output_schema and c.model == "mockllm" for c in calls)


_OPEN_BORDER = ["." + r[1:] if i == 3 else r for i, r in enumerate(support.SMALL_LEVEL["rows"])]


class _FixedBackend:
    """Stands in for the procedural fallback: always the same valid level."""

    name = "fixed"

    def generate(self, request):
        from generator.backends import BackendOutput

        return BackendOutput(raw=support.level_json(), model="fixed")


@pytest.mark.parametrize(
    ("fault", "script", "served_by"),
    [
        ("http_500", [Reply.error(500)], "fixed"),
        ("http_429_retry_after", [Reply.error(429, retry_after=0.2), Reply.ok(support.level_json())], "llm"),
        ("timeout", [Reply.ok(support.level_json(), delay_s=3.0)], "fixed"),
        ("truncated_json", [Reply.truncated(support.level_json())], "fixed"),
        ("malformed_json", [Reply.ok("{not json at all")], "fixed"),
        ("schema_breaking", [Reply.ok(json.dumps({"name": 3, "rows": "x"}))], "fixed"),
        ("fails_gates", [Reply.ok(support.level_json(rows=_OPEN_BORDER))], "fixed"),
    ],
)
def test_every_fault_still_ends_in_a_valid_level_with_the_fault_recorded(_forge_home, fault, script, served_by):
    facade = pytest.importorskip("generator.facade")
    from generator.store import Store

    with FakeOpenAIServer(script) as server:
        teacher = _backend(server, timeout_s=1.0, max_retries=1 if fault.startswith("http_429") else 0)
        fixed = _FixedBackend()
        gen = facade.LevelGenerator([teacher, fixed], deadline_s=8, max_attempts=2, fallback=fixed)
        try:
            level = gen.generate(SPEC, seed=2)
        finally:
            gen.close()
    assert level.backend == served_by
    assert (level.level.width, level.level.height) == (SPEC.width, SPEC.height)
    with Store.open(_forge_home / "forge.db") as store:
        llm_calls = [c.record for c in store.iter_calls(backend="llm")]
    assert llm_calls, "the teacher's attempts are recorded"
    if served_by == "fixed":
        assert all(c.error or c.valid is False for c in llm_calls)  # each fault is on record
