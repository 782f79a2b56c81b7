"""``python -m generator.serve``: the promoted students as an OpenAI-compatible HTTP endpoint.

Size: over 400 lines on purpose. The command line, model loading and the
request/response shapes of one OpenAI-compatible service; the HTTP plumbing
is in :mod:`generator.serving.asgi`.

A studio can run the students on another machine and point games at it
(:class:`generator.backends.remote.RemoteStudentBackend`)::

    python -m generator.serve --port 8088                     # every site with a promoted version
    python -m generator.serve --site 'jac.levels:design_level#fa462d2e' --quantize none

Endpoints (Starlette on uvicorn, :mod:`generator.serving.asgi`; requests are served
concurrently, each model answers one request at a time on a worker thread):

``GET /v1/models``
    One entry per served call site: ``id`` is the site id, plus ``version``.
``POST /v1/chat/completions``
    OpenAI chat format.  ``model`` is a site id (``"level"`` also names the
    level site); the last user message holds the call's arguments as a JSON
    object (for levels the spec, directly or as ``{"spec": {...}}``; the
    compact prompt the students are trained on, such as
    ``L 16x12 d3 e2 i1 crypt``, is accepted too).  ``choices[0].message.content``
    is the result as JSON.  Levels are validated and resampled like the
    in-process student backend does.  ``seed`` and ``temperature`` are
    honoured; ``stream`` and ``n > 1`` are refused.  The reply carries an
    extra ``dungeon_forge`` object: ``valid``, ``confidence`` (mean token
    log-probability), ``attempts``, ``model_version``, ``latency_ms``.
``GET /healthz``
    ``{"status": "ok", ...}`` (never needs a key).

Errors use OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``):
400 malformed request (deeply nested JSON included), 401 missing/wrong key,
404 unknown model or path, 405 other methods, 408 a body not complete within
``--io-timeout-s`` (30 s), 413 body over 64 KiB (refused unread, by
``Content-Length`` or as a chunked body grows), 502 the student failed.
An error sent before the body was read closes the connection.  When
``FORGE_STUDENT_API_KEY`` is set where the server starts, every ``/v1``
request needs ``Authorization: Bearer <that key>``.

Models are loaded once at start through the model registry (checksums
verified); a site without a promoted version refuses the start.  Exit
status: 0 stopped cleanly, 1 refused to start (no promoted model, corrupt
artefact, port in use), 2 bad usage.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import itertools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from generator.serving.asgi import BodyError, read_body
from generator.errors import BackendError, GeneratorError

__all__ = [
    "API_KEY_ENV",
    "MAX_BODY_BYTES",
    "Completion",
    "RequestError",
    "ServeError",
    "ServedModel",
    "StudentServer",
    "load_models",
    "main",
]

log = logging.getLogger("generator.serve" if __name__ == "__main__" else __name__)

#: The shared secret clients send as a bearer token (server: required when set; client: sent when set).
API_KEY_ENV: Final = "FORGE_STUDENT_API_KEY"
#: Request bodies above this are refused unread.
MAX_BODY_BYTES: Final = 64 * 1024
#: Alias accepted for the level site in ``model``.
LEVEL_ALIAS: Final = "level"
_HEADER_RE: Final = re.compile(r"^L (\d+)x(\d+) d(\d+) e(\d+) i(\d+) ([a-z_]+)\s*$")


class ServeError(GeneratorError):
    """The server cannot start (no promoted model, corrupt artefact, bad address)."""


class RequestError(GeneratorError):
    """A request the server refuses; carries the HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Completion:
    """One answer of a served model."""

    content: str
    valid: bool
    confidence: float | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


# ---------------------------------------------------------------------- models


@dataclass
class ServedModel:
    """One call site's promoted student, loaded once; :meth:`complete` runs one request at a time."""

    site: str
    version: str
    created: float
    is_level: bool
    engine: Any  #: StudentBackend (level site) or LocalStudent (any other site)
    temperature: float = 1.0
    max_tries: int = 8
    deadline_s: float = 30.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seeds: Any = field(default_factory=lambda: itertools.count(1))
    _tries: int = 0
    _valid: bool = False

    # The level backend validates through this, so the server can count attempts.
    def _validate(self, result: Any, spec: Any) -> Any:
        from generator.validation import validate_level

        report = validate_level(result, spec)
        self._tries += 1
        self._valid = self._valid or bool(report.valid)
        return report

    def parse_args(self, content: str) -> dict[str, Any]:
        """The call's arguments from a user message (JSON object, or the compact prompt)."""
        text = content.strip()
        try:
            args = json.loads(text)
        except (ValueError, RecursionError):
            args = None
        if args is None and self.is_level and (m := _HEADER_RE.match(text)):
            w, h, d, e, i, theme = m.groups()
            args = {"spec": {"width": int(w), "height": int(h), "difficulty": int(d), "enemies": int(e),
                             "items": int(i), "theme": theme}}
        if args is None and not self.is_level and content.endswith("\t"):
            try:
                args = json.loads(content[:-1])
            except ValueError:
                args = None
        if not isinstance(args, dict):
            form = "a level spec such as {\"spec\": {\"width\": 16, ...}}" if self.is_level else "a JSON object"
            raise RequestError(400, f"the last user message must hold the call's arguments as {form}",
                               param="messages", code="bad_arguments")
        return args

    def complete(self, args: dict[str, Any], *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        """Answer one call.  Raises :class:`RequestError` (400) for bad arguments, :class:`BackendError` on failure."""
        if self.is_level:
            return self._complete_level(args, seed=seed, temperature=temperature)
        return self._complete_generic(args, seed=seed, temperature=temperature, max_tokens=max_tokens)

    def _complete_level(self, args: dict[str, Any], *, seed: int | None, temperature: float | None) -> Completion:
        from engine.core.errors import SpecError
        from engine.core.level import LevelSpec
        from generator.backends import BackendRequest
        from generator.local.codec import CodecError, spec_from_args

        try:
            spec = LevelSpec.from_dict(spec_from_args(args))
        except (CodecError, SpecError) as exc:
            raise RequestError(400, f"bad level spec: {exc}", param="messages", code="bad_spec") from None
        started = time.perf_counter()
        with self.lock:
            self._tries, self._valid = 0, False
            self.engine.temperature = self.temperature if temperature is None else temperature
            seed = next(self._seeds) if seed is None else seed
            out = self.engine.generate(
                BackendRequest(spec=spec, seed=seed, deadline=time.monotonic() + self.deadline_s))
            tries, valid = self._tries, self._valid or out.level is not None
        return Completion(content=out.raw, valid=valid, confidence=out.confidence, attempts=max(tries, 1),
                          prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                          latency_ms=(time.perf_counter() - started) * 1000.0)

    def _complete_generic(self, args: dict[str, Any], *, seed: int | None, temperature: float | None,
                          max_tokens: int | None) -> Completion:
        from generator.validation.sites import validator_for

        check = validator_for(self.site)
        started = time.perf_counter()
        out = None
        valid = False
        attempts = 0
        with self.lock:
            base = next(self._seeds) if seed is None else seed
            deadline = time.monotonic() + self.deadline_s
            while attempts < self.max_tries:
                out = self.engine.generate(args, seed=base + attempts, max_new_tokens=max_tokens,
                                           temperature=self.temperature if temperature is None else temperature)
                attempts += 1
                if out.result is not None:
                    valid = check(out.result)[0] if check is not None else True
                    if valid:
                        break
                if time.monotonic() >= deadline:
                    break
        assert out is not None
        content = json.dumps(out.result, separators=(",", ":")) if out.result is not None else out.text
        return Completion(content=content, valid=valid, confidence=out.mean_logprob, attempts=attempts,
                          prompt_tokens=out.prompt_tokens, completion_tokens=out.tokens,
                          latency_ms=(time.perf_counter() - started) * 1000.0)

    def describe(self) -> dict[str, Any]:
        return {"id": self.site, "object": "model", "created": int(self.created), "owned_by": "dungeon-forge",
                "version": self.version, "kind": "level" if self.is_level else "generic"}


def load_models(
    data_dir: str | os.PathLike[str] | None = None,
    sites: Sequence[str] | None = None,
    *,
    quantize: str | None = "int8",
    temperature: float = 1.0,
    max_tries: int = 8,
    batch: int = 4,
    deadline_s: float = 30.0,
) -> list[ServedModel]:
    """Load the promoted student of each site (default: every site with one) through the registry.

    Checksums are verified before loading.  Raises :class:`ServeError` when a
    site has no promoted version, an artefact is corrupt, or nothing is promoted at all.
    """
    from generator.local.codec import is_level_site
    from generator.local.registry import Registry

    registry = Registry.in_data_dir(data_dir)
    if not sites:
        sites = [s for s in registry.sites() if registry.current(s) is not None]
        if not sites:
            raise ServeError(
                f"no call site has a promoted student in {registry.root}; train one with "
                "`python -m generator.train` or promote one with `python -m generator.models promote`"
            )
    models: list[ServedModel] = []
    for site in dict.fromkeys(sites):
        try:
            current = registry.current(site)
            if current is None:
                known = ", ".join(m.version for m in registry.versions(site)) or "none"
                raise ServeError(
                    f"site {site} has no promoted version in {registry.root} (versions: {known}); promote one "
                    "with `python -m generator.models promote VERSION --site ...` or train with "
                    "`python -m generator.train`"
                )
            model_dir = registry.model_dir(site, current.version)  # verifies every checksum
            level = is_level_site(site)
            if level:
                from generator.local.student import StudentBackend

                engine: Any = StudentBackend(model_dir, quantize=quantize, site=site, max_tries=max_tries,
                                             batch=batch, temperature=temperature)
                engine.model_version = current.version
            else:
                from generator.local.student import LocalStudent

                engine = LocalStudent.load(model_dir, quantize=quantize, site=site)
        except ServeError:
            raise
        except GeneratorError as exc:  # RegistryError, CorruptModelError, ModelLoadError
            raise ServeError(f"cannot serve {site}: {exc}") from None
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ServeError(f"serving students needs torch and transformers ({exc}); "
                             "pip install 'dungeon-forge[train]'") from None
        served = ServedModel(site=site, version=current.version, created=current.created, is_level=level,
                             engine=engine, temperature=temperature, max_tries=max_tries, deadline_s=deadline_s)
        if level:
            engine.validate = served._validate  # count attempts and keep the verdict
        log.info("serving %s %s from %s (%s)", site, current.version, model_dir, quantize or "fp32")
        models.append(served)
    return models


# ---------------------------------------------------------------------- HTTP


class StudentServer:
    """The HTTP server (Starlette on uvicorn); ``models`` maps model ids (site ids, plus ``level``) to :class:`ServedModel`.

    ``api_key``: when set, ``/v1`` requests need ``Authorization: Bearer <key>``.
    ``max_body``: larger request bodies are refused (413) unread.
    ``io_timeout_s``: a request body that has not fully arrived this long
    after the headers gets 408 and the connection is closed.  Both are read
    per request, so they may be changed on a running server.  The socket is
    bound at construction (``OSError`` when the port is taken); use as a
    context manager to serve on a background thread (tests, embedding), or
    call :meth:`serve_forever`.
    """

    def __init__(self, models: Sequence[ServedModel], host: str = "127.0.0.1", port: int = 8088, *,
                 api_key: str | None = None, max_body: int = MAX_BODY_BYTES, io_timeout_s: float = 30.0,
                 access_log: bool = False) -> None:
        from generator.serving.asgi import ASGIServer

        self.served = list(models)
        self.models: dict[str, ServedModel] = {m.site: m for m in self.served}
        levels = [m for m in self.served if m.is_level]
        if len(levels) == 1:
            self.models.setdefault(LEVEL_ALIAS, levels[0])
        self.api_key = api_key or None
        self.max_body = max_body
        self.io_timeout_s = io_timeout_s  #: a request body must arrive within this many seconds
        self.started = time.time()
        self.app = _app(self)
        self.http = ASGIServer(self.app, host, port, name="forge-serve", access_log=access_log,
                               graceful_s=min(io_timeout_s, 5.0))
        self.server_address = self.http.server_address

    @property
    def url(self) -> str:
        """The base URL a client uses (``http://host:port/v1``)."""
        return f"{self.http.origin}/v1"

    def serve_forever(self) -> None:
        """Serve on this thread until Ctrl-C (from the main thread) or :meth:`close`."""
        self.http.serve_forever()

    def __enter__(self) -> StudentServer:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.stop()


class _Reply(Response):
    """A JSON reply written as the stdlib server wrote it (compact separators)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _error_reply(request: Request, err: RequestError) -> Response:
    # A body left unread cannot be skipped reliably: close the connection after the answer.
    unread = request.method in _BODY_METHODS and not getattr(request.state, "body_read", False)
    return _Reply(err.body(), status_code=err.status, headers={"Connection": "close"} if unread else None)


def _app(server: StudentServer) -> Starlette:
    """The ASGI application of ``server`` (routes read the server's settings per request)."""

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as err:
                return _error_reply(request, err)
            except Exception:  # never a traceback to the client, never a dead server
                log.exception("unexpected error serving %s %s", request.method, request.url.path)
                return _error_reply(request, RequestError(500, "internal server error; see the server log",
                                                          type_="server_error", code="internal_error"))
        return endpoint

    def require_key(request: Request) -> None:
        key = server.api_key
        if key is None:
            return
        got = request.headers.get("authorization", "")
        token = got[7:].strip() if got[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise RequestError(401, f"missing or wrong API key: send 'Authorization: Bearer <key>' with the "
                                    f"key set as {API_KEY_ENV} on the server", code="invalid_api_key")

    def model(name: Any) -> ServedModel:
        if not isinstance(name, str) or not name:
            raise RequestError(400, "'model' must be the call-site id of a served model (see GET /v1/models)",
                               param="model", code="missing_model")
        found = server.models.get(name)
        if found is None:
            known = ", ".join(server.models) or "none"
            raise RequestError(404, f"model {name!r} is not served here (served: {known})", param="model",
                               code="model_not_found")
        return found

    async def healthz(request: Request) -> Response:
        return _Reply({"status": "ok", "uptime_s": round(time.time() - server.started, 1),
                       "models": [{"id": m.site, "version": m.version} for m in server.served]})

    async def list_models(request: Request) -> Response:
        require_key(request)
        return _Reply({"object": "list", "data": [m.describe() for m in server.served]})

    async def one_model(request: Request) -> Response:
        require_key(request)
        return _Reply(model(request.path_params["model_id"]).describe())

    async def chat(request: Request) -> Response:
        require_key(request)
        try:
            data = await read_body(request, max_bytes=server.max_body, timeout_s=server.io_timeout_s)
        except BodyError as exc:
            raise RequestError(exc.status, exc.message, code=exc.code) from None
        request.state.body_read = True
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RequestError(400, f"request body is not valid JSON: {str(exc)[:200]}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object", code="invalid_json")
        served = model(body.get("model"))
        if body.get("stream"):
            raise RequestError(400, "stream=true is not supported; ask without streaming", param="stream",
                               code="unsupported")
        if body.get("n", 1) not in (1, None):
            raise RequestError(400, "only n=1 is supported", param="n", code="unsupported")
        args = served.parse_args(_last_user_content(body.get("messages")))
        seed = _optional_number(body, "seed", int, 0, 2**31 - 1)
        temperature = _optional_number(body, "temperature", float, 0.0, 2.0)
        max_tokens = _optional_number(body, "max_completion_tokens", int, 1, 1 << 20)
        if max_tokens is None:
            max_tokens = _optional_number(body, "max_tokens", int, 1, 1 << 20)
        try:  # the model runs on a worker thread; the event loop keeps answering other requests
            done = await run_in_threadpool(served.complete, args, seed=seed, temperature=temperature,
                                           max_tokens=max_tokens)
        except RequestError:
            raise
        except BackendError as exc:
            log.warning("student %s %s failed: %s", served.site, served.version, exc)
            raise RequestError(502, f"the student for {served.site} failed: {exc}", type_="server_error",
                               code="student_failed") from None
        except Exception as exc:
            log.exception("student %s %s raised", served.site, served.version)
            raise RequestError(502, f"the student for {served.site} failed ({type(exc).__name__}); "
                                    "see the server log", type_="server_error", code="student_failed") from None
        return _Reply({
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served.site,
            "system_fingerprint": served.version,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                      "total_tokens": done.prompt_tokens + done.completion_tokens},
            "dungeon_forge": {"valid": done.valid, "confidence": done.confidence, "attempts": done.attempts,
                              "model_version": served.version, "latency_ms": round(done.latency_ms, 2),
                              "site": served.site},
        })

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        path = request.url.path
        if status == 405:
            err = RequestError(405, f"{request.method} is not supported on {path}", code="method_not_allowed")
        elif status == 404:
            hint = "POST /v1/chat/completions" if request.method == "POST" else \
                "try /v1/models, /v1/chat/completions or /healthz"
            err = RequestError(404, f"no such path {path}; {hint}", code="not_found")
        else:
            err = RequestError(status, str(getattr(exc, "detail", "")) or "bad request", code="bad_request")
        return _error_reply(request, err)

    return Starlette(
        routes=[
            Route("/healthz", guarded(healthz), methods=["GET"]),
            Route("/v1/models", guarded(list_models), methods=["GET"]),
            Route("/v1/models/{model_id:path}", guarded(one_model), methods=["GET"]),
            Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _last_user_content(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list of chat messages", param="messages",
                           code="bad_messages")
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # content parts: join the text ones
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            if isinstance(content, str) and content.strip():
                return content
            break
    raise RequestError(400, "no user message with text content; put the call's arguments in the last user message",
                       param="messages", code="bad_messages")


def _optional_number(body: dict[str, Any], key: str, kind: type, low: float, high: float) -> Any:
    value = body.get(key)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int and isinstance(value, float):
        ok = value.is_integer()
    if not ok or not low <= value <= high:
        raise RequestError(400, f"'{key}' must be a number in [{low}, {high}], got {value!r}", param=key,
                           code="bad_parameter")
    return kind(value)


# ---------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.serve",
        description="Serve the promoted student of each call site over an OpenAI-compatible HTTP API.",
        epilog=f"Set {API_KEY_ENV} to require 'Authorization: Bearer <key>' on /v1 requests "
               "(do so whenever --host is not a loopback address).",
    )
    p.add_argument("--data-dir", help="data directory (default: $FORGE_HOME or the platform data dir)")
    p.add_argument("--site", action="append", default=None,
                   help="call-site id to serve (repeatable; default: every site with a promoted version)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8088, help="port (default: 8088; 0 picks a free one)")
    p.add_argument("--quantize", choices=("int8", "none"), default="int8",
                   help="torch dynamic int8 (default) or full precision")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature when a request gives none (default: 1.0)")
    p.add_argument("--max-tries", type=int, default=8, help="candidates judged per request, at most (default: 8)")
    p.add_argument("--batch", type=int, default=4, help="level candidates sampled together (default: 4)")
    p.add_argument("--deadline-s", type=float, default=30.0, help="time budget of one request (default: 30)")
    p.add_argument("--io-timeout-s", type=float, default=30.0,
                   help="a request body must arrive within this many seconds, else 408 (default: 30)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.max_tries < 1 or args.batch < 1 or not args.deadline_s > 0 or not args.io_timeout_s > 0
            or not 0 <= args.port <= 65535):
        print("error: --max-tries and --batch must be >= 1, --deadline-s and --io-timeout-s > 0, "
              "--port in 0..65535", file=sys.stderr)
        return 2
    if args.threads:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:  # pragma: no cover - load_models reports it
            pass
    try:
        models = load_models(args.data_dir, args.site, quantize=None if args.quantize == "none" else "int8",
                             temperature=args.temperature, max_tries=args.max_tries, batch=args.batch,
                             deadline_s=args.deadline_s)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    api_key = os.environ.get(API_KEY_ENV) or None
    if api_key is None and not _is_loopback(args.host):
        log.warning("serving on %s without %s: anyone who can reach the port can use the models",
                    args.host, API_KEY_ENV)
    try:
        server = StudentServer(models, args.host, args.port, api_key=api_key, io_timeout_s=args.io_timeout_s,
                               access_log=args.log_level == "DEBUG")
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc}); pick another --port", file=sys.stderr)
        return 1
    print(f"serving {len(models)} model(s) on {server.url} (key {'required' if api_key else 'not required'}):")
    for m in models:
        print(f"  {m.site}  {m.version}")
    print("Ctrl-C stops.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
