"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

Point a client at it with ``OPENAI_BASE_URL=server.url``.  Each POST to
``/v1/chat/completions`` takes the next :class:`Reply` from the script (the
last one repeats when the script runs out) and records the request body.

>>> with FakeOpenAIServer([Reply.ok('{"a": 1}')]) as server:
...     server.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    content: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] = (120, 80)
    raw_body: bytes | None = None  #: sent verbatim instead of a chat completion (truncated JSON, ...)
    drop: bool = False  #: close the connection without answering (a dropped connection)

    @classmethod
    def ok(cls, content: str, *, usage: tuple[int, int] = (120, 80), delay_s: float = 0.0) -> Reply:
        return cls(content=content, usage=usage, delay_s=delay_s)

    @classmethod
    def error(cls, status: int, message: str = "scripted failure", *, retry_after: float | None = None) -> Reply:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = json.dumps({"error": {"message": message, "type": "server_error", "code": status}})
        return cls(status=status, headers=headers, raw_body=body.encode())

    @classmethod
    def dropped(cls) -> Reply:
        """The connection closes before any answer."""
        return cls(drop=True)

    @classmethod
    def truncated(cls, content: str) -> Reply:
        """A 200 whose body is cut off mid-JSON."""
        full = json.dumps(_completion("m", content, (1, 1))).encode()
        return cls(raw_body=full[: len(full) // 2])


Script = list[Reply] | Callable[[dict[str, Any]], Reply]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) that runs while the ``with`` block does.

    Subclasses give the request handler (:meth:`_handler_class`); ``url`` is
    the OpenAI-style base URL (``http://127.0.0.1:PORT/v1``).
    """

    def __init__(self, *, name: str = "fake-openai", queue_size: int | None = None) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        if queue_size is not None:
            self._httpd.request_queue_size = queue_size
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class FakeOpenAIServer(LoopbackServer):
    """Start with ``with FakeOpenAIServer(script) as server:``; ``server.requests`` holds the bodies."""

    def __init__(self, script: Script | None = None) -> None:
        self._script = script if script is not None else [Reply.ok('"ok"')]
        self._lock = threading.Lock()
        self._served = 0
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        super().__init__(name="fake-openai")

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            index = self._served
            self._served += 1
        if callable(self._script):
            return self._script(body)
        return self._script[min(index, len(self._script) - 1)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    body = {}
                server.auth_headers.append(self.headers.get("Authorization", ""))
                reply = server._next(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = reply.raw_body
                if payload is None:
                    payload = json.dumps(_completion(body.get("model", "fake"), reply.content or "", reply.usage)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        return Handler


def _completion(model: str, content: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }
