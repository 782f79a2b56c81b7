"""What the project's HTTP servers share: Starlette apps on uvicorn, bounded request bodies.

``python -m generator.serve`` (the students over an OpenAI-compatible API)
and the rating page (``python -m generator.evaluate --rate``) are Starlette
applications run by uvicorn (decision D22).  This module holds the parts
both need:

* :class:`ASGIServer` binds the listening socket up front (so "port in use"
  is an ``OSError`` at construction, and ``port=0`` gives the real port at
  once), with a listen backlog of :data:`BACKLOG`, and runs uvicorn on it in
  the calling thread (:meth:`ASGIServer.serve_forever`) or a background
  thread (:meth:`ASGIServer.start`, a context manager; tests, embedding);
* :func:`read_body` reads a request body with a size limit (a
  ``Content-Length`` over it is refused unread) and a time limit for the
  whole body (a stalled or trickled body is cut off), raising
  :class:`BodyError` with the HTTP status to answer.

uvicorn itself parses HTTP (h11), limits header size, closes idle
keep-alive connections after :data:`KEEP_ALIVE_S`, and serves every
connection on one event loop, so a slow client costs a socket, not a thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Final

__all__ = ["BACKLOG", "KEEP_ALIVE_S", "ASGIServer", "BodyError", "read_body"]

log = logging.getLogger(__name__)

#: Listen queue length (the stdlib servers had 5: connections beyond it went unanswered).
BACKLOG: Final = 2048
#: An idle keep-alive connection is closed after this many seconds.
KEEP_ALIVE_S: Final = 5


class BodyError(Exception):
    """A request body the server refuses: ``status`` (400, 408, 413) and a message for the client."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


async def read_body(request: Any, *, max_bytes: int, timeout_s: float) -> bytes:
    """The body of a Starlette ``request``: at most ``max_bytes``, all of it within ``timeout_s`` seconds.

    Raises :class:`BodyError`: 413 when ``Content-Length`` (or the bytes
    received, for a chunked body) exceed the limit, 400 for a malformed
    ``Content-Length`` or a client that hung up mid-body, 408 when the body
    did not arrive in time.  After a :class:`BodyError` the connection
    should be closed (the body is left unread).
    """
    import anyio
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyError(400, f"Content-Length {declared[:20]!r} is not a byte count", "bad_length")
        if int(declared) > max_bytes:
            raise BodyError(413, f"request body of {int(declared)} bytes is over the {max_bytes}-byte limit",
                            "body_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise BodyError(413, f"request body is over the {max_bytes}-byte limit", "body_too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, f"the request body did not arrive within {timeout_s:g} s", "timeout") from None
    except ClientDisconnect:
        raise BodyError(400, "request body ended early", "incomplete_body") from None
    return b"".join(chunks)


class ASGIServer:
    """An ASGI ``app`` served by uvicorn on ``host:port`` (``port=0``: a free one).

    The socket is bound in the constructor (``OSError`` when the address is
    taken).  :meth:`serve_forever` blocks (Ctrl-C stops it when called from
    the main thread); :meth:`start` / :meth:`stop` (or ``with``) run it on a
    background thread.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "forge-http",
                 access_log: bool = False, backlog: int = BACKLOG, graceful_s: float = 5.0) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=backlog)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.name = name
        config = uvicorn.Config(
            app, log_config=None, access_log=access_log, lifespan="off", http="h11", loop="asyncio",
            ws="none", backlog=backlog, timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=max(1, round(graceful_s)), server_header=False,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    @property
    def origin(self) -> str:
        """``http://host:port`` of the bound socket."""
        host, port = self.server_address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve on this thread until stopped (or Ctrl-C, from the main thread)."""
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def _run(self) -> None:
        try:
            self.serve_forever()
        except BaseException as exc:  # reported by start()
            self._failed = exc

    def start(self, timeout_s: float = 30.0) -> ASGIServer:
        """Serve on a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._uvicorn.started:
            self.stop()
            raise OSError(f"the HTTP server on {self.origin} did not start: {self._failed!r}")
        return self

    def stop(self) -> None:
        """Stop serving (requests in flight get a few seconds to finish) and free the port."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> ASGIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
