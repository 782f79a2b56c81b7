"""The HTTP requests behind one recorded call: how many, and which failed and were retried.

Provider SDKs retry transient faults on their own (the OpenAI client retries
a 500, a 429 or a dropped connection twice before anything reaches byllm), so
a call that ended well may have cost several requests, and a teacher's real
error rate was invisible: 1,092 injected 500s in a load run left no trace.

:func:`observe` opens a :class:`TransportLog` for the current context (the
facade wraps every backend attempt in one, the capture plugin every ``by
llm()`` call it records); every request httpx sends in that context -- from
the OpenAI SDK, litellm's own handler, the remote-student client -- adds its
outcome.  The log ends up in the call's record as ``transport``::

    {"requests": 3, "retries": 2, "reasks": 0, "faults": {"http_500": 1, "connection": 1}}

``faults`` counts failed requests by kind: ``http_<status>`` for a status of
400 or more, ``timeout`` and ``connection`` (refused, reset, dropped
mid-answer) for transport errors, else the exception's name.  ``retries``
counts requests sent after a failed one in the same call, ``reasks`` those
sent after an answer (byllm asking again because the output did not parse).

httpx offers no process-wide hook, so :func:`install` wraps
``httpx.HTTPTransport.handle_request`` and its async twin once (decision
D32).  Outside an open log the wrapper only reads one context variable and
calls through.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

__all__ = ["TransportLog", "fault_kind", "install", "observe", "observe_unless_observed"]


class TransportLog:
    """Outcomes of the HTTP requests made during one call (thread-safe)."""

    __slots__ = ("_lock", "faults", "reasks", "requests", "retries", "_last_failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.reasks = 0
        self.faults: Counter[str] = Counter()
        self._last_failed = False

    def add(self, fault: str | None) -> None:
        with self._lock:
            if self._last_failed:
                self.retries += 1
            elif self.requests:
                self.reasks += 1  # a request after an answer: byllm re-asking for unparsable output
            self.requests += 1
            self._last_failed = fault is not None
            if fault is not None:
                self.faults[fault] += 1

    def to_dict(self) -> dict[str, Any] | None:
        """What the call's record keeps (``None`` when no request was made)."""
        with self._lock:
            if not self.requests:
                return None
            return {"requests": self.requests, "retries": self.retries, "reasks": self.reasks,
                    "faults": dict(sorted(self.faults.items()))}


_CURRENT: contextvars.ContextVar[TransportLog | None] = contextvars.ContextVar("forge_transport_log", default=None)
_install_lock = threading.Lock()
_installed = False


def fault_kind(status: int | None = None, exc: BaseException | None = None) -> str | None:
    """``http_<status>`` for a failed status, ``timeout`` / ``connection`` / the name for an exception."""
    if exc is not None:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
            return "connection"
        return type(exc).__name__
    if status is not None and status >= 400:
        return f"http_{status}"
    return None


@contextlib.contextmanager
def observe() -> Iterator[TransportLog]:
    """Record the HTTP requests made in this context (threads started with its copy included)."""
    install()
    log = TransportLog()
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def observe_unless_observed() -> Iterator[TransportLog | None]:
    """:func:`observe`, or ``None`` when an enclosing call (the facade's attempt) already records."""
    if _CURRENT.get() is not None:
        yield None
        return
    with observe() as log:
        yield log


def install() -> bool:
    """Wrap httpx's transports once; False when httpx is not installed."""
    global _installed
    if _installed:
        return True
    with _install_lock:
        if _installed:
            return True
        try:
            import httpx

            sync_send = httpx.HTTPTransport.handle_request
            async_send = httpx.AsyncHTTPTransport.handle_async_request
        except (ImportError, AttributeError):  # no httpx, or one that renamed its transport API
            return False

        def handle_request(self: Any, request: Any) -> Any:
            log = _CURRENT.get()
            if log is None:
                return sync_send(self, request)
            try:
                response = sync_send(self, request)
            except Exception as exc:
                log.add(fault_kind(exc=exc))
                raise
            log.add(fault_kind(status=response.status_code))
            return response

        async def handle_async_request(self: Any, request: Any) -> Any:
            log = _CURRENT.get()
            if log is None:
                return await async_send(self, request)
            try:
                response = await async_send(self, request)
            except Exception as exc:
                log.add(fault_kind(exc=exc))
                raise
            log.add(fault_kind(status=response.status_code))
            return response

        handle_request.__wrapped__ = sync_send  # type: ignore[attr-defined]
        handle_async_request.__wrapped__ = async_send  # type: ignore[attr-defined]
        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
        httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]
        _installed = True
    return True
