"""The student over HTTP: ``python -m generator.serve`` and ``RemoteStudentBackend``."""

from __future__ import annotations

import http.client
import json
import time

import pytest

pytest.importorskip("torch")

from engine.core.level import LevelSpec  # noqa: E402
from generator.backends import Backend, BackendRequest  # noqa: E402
from generator.store.callsite import LEVEL_SITE  # noqa: E402
from generator.errors import BackendError  # noqa: E402
from generator.backends.remote import RemoteStudentBackend  # noqa: E402
from generator.serve import MAX_BODY_BYTES, StudentServer, load_models, main  # noqa: E402
from generator.validation import validate_level  # noqa: E402
from tests.fakes.jac_support import load_fake  # noqa: E402


tiny = load_fake("tiny_student")

SPEC = {"width": 16, "height": 12, "difficulty": 2, "enemies": 1, "items": 1, "theme": "crypt"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data dir whose registry has an untrained micro-1m student promoted for the level site."""
    import torch

    torch.set_num_threads(1)  # a shared 2-core box: two torch threads contend
    root = tmp_path_factory.mktemp("serve_home")
    model_dir = tiny.build_tiny_student(tmp_path_factory.mktemp("tiny") / "student")
    tiny.promote_tiny_student(root, model_dir, LEVEL_SITE)
    return root


@pytest.fixture(scope="module")
def server(data_dir):
    # Untrained: about one sample in four passes every gate, so allow enough tries to find one.
    models = load_models(data_dir, [LEVEL_SITE], quantize=None, max_tries=24, batch=8, deadline_s=60)
    with StudentServer(models, "127.0.0.1", 0) as srv:
        yield srv


def _request(server, method, path, body=None, *, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _chat(content, model=LEVEL_SITE, **extra):
    return {"model": model, "messages": [{"role": "system", "content": "ignored"},
                                         {"role": "user", "content": content}], **extra}


def test_models_lists_the_promoted_site_and_health_is_ok(server):
    status, body = _request(server, "GET", "/v1/models")
    assert status == 200 and body["object"] == "list"
    assert [(m["id"], m["version"]) for m in body["data"]] == [(LEVEL_SITE, "v0001")]
    status, health = _request(server, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok"


def test_chat_completion_returns_a_level_that_validates_for_the_spec(server):
    status, body = _request(server, "POST", "/v1/chat/completions", _chat(json.dumps({"spec": SPEC}), seed=3))
    assert status == 200, body
    extra = body["dungeon_forge"]
    assert extra["valid"] is True and extra["model_version"] == "v0001"
    assert extra["attempts"] >= 1 and extra["confidence"] < 0 and extra["latency_ms"] > 0
    level = json.loads(body["choices"][0]["message"]["content"])
    assert validate_level(level, LevelSpec(**SPEC)).valid
    assert body["usage"]["completion_tokens"] > 0 and body["usage"]["prompt_tokens"] > 0
    # the compact prompt the students are trained on is accepted too, and a seed repeats its level
    again = _request(server, "POST", "/v1/chat/completions", _chat("L 16x12 d2 e1 i1 crypt", model="level", seed=3))
    assert again[0] == 200 and again[1]["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]


def test_remote_backend_serves_the_facade_a_valid_level(server):
    backend = RemoteStudentBackend(server.url, LEVEL_SITE, timeout_s=60)
    assert isinstance(backend, Backend)
    spec = LevelSpec(**SPEC)
    out = backend.generate(BackendRequest(spec=spec, seed=5))
    assert validate_level(out.raw, spec).valid
    assert out.model == "student" and out.model_version == "v0001"
    assert out.confidence is not None and out.confidence < 0 and out.completion_tokens > 0
    backend.close()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        ({"model": LEVEL_SITE}, 400, "bad_messages"),
        (_chat("make me a dungeon please"), 400, "bad_arguments"),
        (_chat(json.dumps({"spec": SPEC | {"width": 3}})), 400, "bad_spec"),
        (_chat(json.dumps({"spec": SPEC}), stream=True), 400, "unsupported"),
        (_chat(json.dumps({"spec": SPEC}), temperature="hot"), 400, "bad_parameter"),
        (_chat(json.dumps({"spec": SPEC}), seed=2**40), 400, "bad_parameter"),
        (b"[" * 30000 + b"]" * 30000, 400, "invalid_json"),
        (_chat("[" * 20000 + "]" * 20000), 400, "bad_arguments"),
        (_chat(json.dumps({"spec": SPEC}), model="nobody:home#00000000"), 404, "model_not_found"),
    ],
    ids=["garbage", "not-object", "no-messages", "prose", "bad-spec", "stream", "bad-temperature", "huge-seed",
         "deep-body", "deep-content", "unknown-model"],
)
def test_bad_requests_get_openai_shaped_errors_and_the_server_keeps_serving(server, body, status, code):
    got_status, got = _request(server, "POST", "/v1/chat/completions", body)
    assert got_status == status
    assert got["error"]["code"] == code and got["error"]["message"] and "Traceback" not in got["error"]["message"]
    assert _request(server, "GET", "/healthz")[0] == 200


def test_oversized_body_is_refused_unread(server):
    status, body = _request(server, "POST", "/v1/chat/completions", b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert _request(server, "GET", "/v1/models")[0] == 200


def test_a_stalled_body_times_out_and_frees_the_connection(server, monkeypatch):
    import socket

    monkeypatch.setattr(server, "io_timeout_s", 0.5)
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\"")
        chunks = []  # the server closes the connection after the reply; headers and body may come apart
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 408") and '"code":"timeout"' in reply
    assert _request(server, "GET", "/healthz")[0] == 200


def test_200_concurrent_connections_are_all_answered(server):
    """Issue 16: with a listen queue of 5, 18 of 200 concurrent connections got no reply."""
    from benchmarks.serve import hammer, http_request

    host, port = server.server_address[:2]
    replies = hammer(host, port, http_request("GET", "/healthz"), 200, timeout_s=20)
    assert [r.error for r in replies if r.status is None] == []
    assert all(r.status == 200 and json.loads(r.body)["status"] == "ok" for r in replies)


def test_a_chunked_body_over_the_limit_is_cut_off(server):
    import socket

    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384  # one byte past the limit, no Content-Length, and no end chunk
        for size in [len(chunk)] * (MAX_BODY_BYTES // len(chunk)) + [1]:
            sock.sendall(b"%x\r\n%s\r\n" % (size, chunk[:size]))
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413") and '"code":"body_too_large"' in reply


class _HeldEngine:
    """A generic site's engine that answers only once ``release`` is set (at once when there is none)."""

    def __init__(self, release=None) -> None:
        import threading

        self.release = release
        self.entered = threading.Event()

    def generate(self, args, **_):
        from types import SimpleNamespace

        self.entered.set()
        if self.release is not None:
            assert self.release.wait(60), "the test never released the engine"
        return SimpleNamespace(result={"ok": True}, text='{"ok":true}', mean_logprob=-1.0, prompt_tokens=3, tokens=4)


def test_health_and_other_models_answer_while_a_model_is_busy():
    import threading

    from generator.serve import ServedModel

    release = threading.Event()
    held = _HeldEngine(release)
    slow = ServedModel("app.slow:f#00000001", "v0001", 0.0, False, held, max_tries=1)
    quick = ServedModel("app.quick:f#00000002", "v0001", 0.0, False, _HeldEngine(), max_tries=1)
    with StudentServer([slow, quick], "127.0.0.1", 0) as srv:
        got = {}
        worker = threading.Thread(target=lambda: got.setdefault("slow", _request(
            srv, "POST", "/v1/chat/completions", _chat('{"a":1}', model=slow.site))))
        worker.start()
        try:
            assert held.entered.wait(30)  # the slow model is now working, and stays so until released
            # Queued behind it, these would wait for the release, which only comes after them.
            assert _request(srv, "GET", "/healthz")[0] == 200
            status, body = _request(srv, "POST", "/v1/chat/completions", _chat('{"a":1}', model=quick.site))
            assert status == 200 and json.loads(body["choices"][0]["message"]["content"]) == {"ok": True}
            assert "slow" not in got
        finally:
            release.set()
        worker.join(timeout=30)
        assert got["slow"][0] == 200


def test_unknown_paths_and_methods(server):
    assert _request(server, "GET", "/v2/nothing")[0] == 404
    assert _request(server, "DELETE", "/v1/models")[0] == 405
    assert _request(server, "POST", "/v1/completions", {"model": LEVEL_SITE})[0] == 404


def test_an_api_key_is_required_when_the_server_has_one(server, monkeypatch):
    monkeypatch.setattr(server, "api_key", "s3cret-key")
    assert _request(server, "GET", "/v1/models")[0] == 401
    assert _request(server, "GET", "/healthz")[0] == 200
    assert _request(server, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret-key"})[0] == 200
    monkeypatch.setenv("FORGE_STUDENT_API_KEY", "wrong-key")
    with pytest.raises(BackendError, match="HTTP 401") as err:
        RemoteStudentBackend(server.url, LEVEL_SITE, timeout_s=10).generate(
            BackendRequest(spec=LevelSpec(**SPEC), seed=1))
    assert "wrong-key" not in str(err.value) and "s3cret" not in str(err.value)


def test_remote_backend_maps_http_errors_to_backend_error(server):
    backend = RemoteStudentBackend(server.url, "nobody:home#00000000", timeout_s=10)
    with pytest.raises(BackendError, match=r"HTTP 404: model 'nobody:home#00000000' is not served"):
        backend.generate(BackendRequest(spec=LevelSpec(**SPEC), seed=1))


def test_a_dead_server_is_a_quick_backend_error():
    with StudentServer([], "127.0.0.1", 0) as srv:
        url = srv.url
    backend = RemoteStudentBackend(url, LEVEL_SITE, timeout_s=5)
    with pytest.raises(BackendError, match="cannot connect"):  # refused, not "timed out"
        backend.generate(BackendRequest(spec=LevelSpec(**SPEC), seed=1))
    with pytest.raises(BackendError, match="deadline"):
        backend.generate(BackendRequest(spec=LevelSpec(**SPEC), seed=1, deadline=time.monotonic() - 1))


def test_a_silent_server_times_out_as_backend_error():
    import socket

    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        backend = RemoteStudentBackend(f"http://127.0.0.1:{port}/v1", LEVEL_SITE, timeout_s=0.5)
        with pytest.raises(BackendError, match="no answer within 0.5 s"):
            backend.generate(BackendRequest(spec=LevelSpec(**SPEC), seed=1))


def test_the_cli_refuses_to_start_without_a_promoted_version(tmp_path, data_dir, capsys):
    assert main(["--data-dir", str(tmp_path / "empty")]) == 1
    assert "no call site has a promoted student" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "--site", "app.story:write_quest#12345678"]) == 1
    assert "has no promoted version" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--quantize" in capsys.readouterr().out


def test_a_corrupt_artefact_refuses_the_start(tmp_path, capsys):
    from generator.local.registry import Registry

    src = tmp_path / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"weights")
    registry = Registry(tmp_path / "home" / "models")
    registry.promote(LEVEL_SITE, registry.add_version(LEVEL_SITE, src, {"base": "micro"}))
    (registry.site_dir(LEVEL_SITE) / "v0001" / "model.safetensors").write_bytes(b"tampered")
    assert main(["--data-dir", str(tmp_path / "home")]) == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_the_facade_serves_levels_from_the_remote_student(server):
    from generator.facade import LevelGenerator

    gen = LevelGenerator([RemoteStudentBackend(server.url, timeout_s=60)], store=False, deadline_s=60)
    got = gen.generate(LevelSpec(**SPEC), seed=2)
    assert got.backend == "student" and got.model_version == "v0001"
    assert validate_level(got.level, LevelSpec(**SPEC)).valid
    gen.close()


def test_remote_settings_come_from_forge_toml_then_the_environment(tmp_path):
    from generator.errors import ConfigError
    from generator.backends.remote import RemoteStudentConfig

    (tmp_path / "forge.toml").write_text('[student_server]\nurl = "http://box:8088/v1"\ntimeout_s = 4\n')
    backend = RemoteStudentBackend.from_config(tmp_path, site=LEVEL_SITE, env={})
    assert (backend.base_url, backend.site, backend.timeout_s) == ("http://box:8088/v1", "level", 4.0)
    env = {"FORGE_STUDENT_URL": "http://other:9000/v1", "FORGE_STUDENT_TIMEOUT_S": "2.5"}
    assert RemoteStudentConfig.load(tmp_path, env=env) == RemoteStudentConfig("http://other:9000/v1", "", 2.5)
    with pytest.raises(ConfigError, match="no URL"):
        RemoteStudentBackend.from_config(tmp_path / "elsewhere", env={})
    (tmp_path / "forge.toml").write_text('[student_server]\nurl = "http://box/v1"\napi_key = "sk-123"\n')
    with pytest.raises(ConfigError, match="never read from a file") as err:
        RemoteStudentConfig.load(tmp_path, env={})
    assert "sk-123" not in str(err.value)
    (tmp_path / "forge.toml").write_text('[student_server]\nurl = "http://box/v1"\ntimeout = 3\n')
    with pytest.raises(ConfigError, match=r"unknown field `timeout` - at `\$\.student_server`; known: url, site, timeout_s"):
        RemoteStudentConfig.load(tmp_path, env={})


def test_forge_toml_points_the_facade_at_the_served_student(server, tmp_path, monkeypatch):
    from generator.facade import LevelGenerator

    monkeypatch.delenv("FORGE_STUDENT_URL", raising=False)
    (tmp_path / "forge.toml").write_text(
        '[generator]\nbackends = ["remote_student", "procedural"]\ndeadline_s = 60\n\n'
        f'[student_server]\nurl = "{server.url}"\ntimeout_s = 60\n')
    gen = LevelGenerator(data_dir=tmp_path, store=False)
    assert [b.name for b in gen.backends] == ["student", "procedural"]
    got = gen.generate(LevelSpec(**SPEC), seed=4)
    assert got.backend == "student" and got.model_version == "v0001"
    gen.close()
    # no URL configured: the game still starts and the cascade skips the remote student
    (tmp_path / "forge.toml").write_text('[generator]\nbackends = ["remote_student", "procedural"]\n')
    assert [b.name for b in LevelGenerator(data_dir=tmp_path, store=False).backends] == ["procedural"]


def test_any_call_site_is_served_and_an_undecodable_answer_is_marked_invalid(data_dir, tmp_path):
    site = "app.story:write_quest#12345678"
    model_dir = data_dir / "models" / "jac.levels--design_level--fa462d2e" / "v0001"
    tiny.promote_tiny_student(tmp_path, model_dir, site)
    models = load_models(tmp_path, [site], quantize=None, max_tries=2)
    with StudentServer(models, "127.0.0.1", 0) as srv:
        status, body = _request(srv, "POST", "/v1/chat/completions",
                                _chat(json.dumps({"hero": "Ann"}), model=site, max_tokens=12, seed=1))
        assert status == 200
        extra = body["dungeon_forge"]
        # an untrained model writes no JSON: the answer comes back, marked invalid, after every try
        assert extra["valid"] is False and extra["attempts"] == 2
        assert body["usage"]["completion_tokens"] <= 12
        assert _request(srv, "POST", "/v1/chat/completions", _chat("not json", model=site))[0] == 400
