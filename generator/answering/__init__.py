"""Who answers a ``by llm()`` call besides the model: the interface between capture and routing.

The capture plugin (:mod:`generator.capture`) asks the installed *local
server* before calling the model; the routing package (:mod:`generator.routing`)
provides one (``SiteServer``).  Both sides import this leaf package and
nothing of each other's internals, so neither package imports the other at
module level (the plugin starts a routing session through
``generator.routing``'s public ``start_foreign_session`` only).

A local server is ``fn(site, args) -> result | LocalAnswer | None``.  One that
also has ``shadow_for(site) -> Shadow | None`` (a :class:`SiteAnswerer`) is
asked, after the model answered, whether a student should answer the same call
in the background.

Those background answers (the plugin's shadows, routing's shadows and spot
checks) run on :class:`generator.answering.worker.BoundedWorker`, a short-backlog
thread that both sides share; the package imports nothing heavy, since the
capture plugin loads while jaclang itself is loading.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "SKIPPED",
    "StudentUnavailable",
    "LocalAnswer",
    "LocalServer",
    "Shadow",
    "SiteAnswerer",
    "as_local_answer",
    "get_local_server",
    "local_server_allowed",
    "set_local_server",
    "teacher_only",
]

#: Failure code of a shadow call the student did not answer (the worker was busy, the student could not
#: be loaded, the program exited first).  Such a call is recorded with ``valid = None``: counted, never judged.
SKIPPED = "V0.skipped"


class StudentUnavailable(Exception):
    """Raised by a :class:`Shadow`'s ``answer`` when the student cannot answer at all (it could not be
    loaded): the call is recorded as skipped, not as a wrong answer."""


#: ``fn(site, args) -> result | LocalAnswer | None``: answer a call site locally, or decline with None.
LocalServer = Callable[[str, dict[str, Any]], Any]


@dataclasses.dataclass
class LocalAnswer:
    """What a local server may return instead of a bare result, to be recorded with it.

    A bare JSON-able value is the same as ``LocalAnswer(result=value)``.  Any
    object with a ``result`` attribute (e.g. a student's output with ``text``
    and ``mean_logprob``) is read the same way; ``result=None`` declines.
    A declined or unusable (not fitting the return type) answer that names a
    ``model_version`` is a student's failed attempt: it is recorded unserved
    and invalid, and the model answers.
    """

    result: Any
    raw: str | None = None
    confidence: float | None = None
    model: str | None = None
    model_version: str | None = None


@dataclasses.dataclass
class Shadow:
    """A student to run beside the model at a call site in state ``shadow``.

    Returned by a local server's ``shadow_for(site)``; ``answer(args)`` is
    called on the plugin's background worker and may return what a local
    server may (a bare result, a :class:`LocalAnswer`, None to give no answer).
    """

    answer: Callable[[dict[str, Any]], Any]
    model_version: str
    model: str = "student"


@runtime_checkable
class SiteAnswerer(Protocol):
    """A local server that also names the student to shadow a site with (``generator.routing.SiteServer``)."""

    def __call__(self, site: str, args: dict[str, Any]) -> Any: ...

    def shadow_for(self, site: str) -> Shadow | None: ...


def as_local_answer(answer: Any) -> LocalAnswer | None:
    """Read what a local server or shadow returned as a :class:`LocalAnswer`; None when it declined.

    >>> as_local_answer({"x": 1})
    LocalAnswer(result={'x': 1}, raw=None, confidence=None, model=None, model_version=None)
    >>> as_local_answer(LocalAnswer(result=None)) is None
    True
    """
    if answer is None:
        return None
    if isinstance(answer, LocalAnswer):
        return answer if answer.result is not None else None
    if not isinstance(answer, (dict, list, str, int, float, bool)) and hasattr(answer, "result"):
        result = getattr(answer, "result")
        if result is None:
            return None
        confidence = getattr(answer, "confidence", None)
        if confidence is None:
            confidence = getattr(answer, "mean_logprob", None)
        return LocalAnswer(
            result=result,
            raw=getattr(answer, "text", None),
            confidence=None if confidence is None else float(confidence),
            model=getattr(answer, "model", None),
            model_version=getattr(answer, "model_version", None),
        )
    return LocalAnswer(result=answer)


_local_server: LocalServer | None = None
_teacher_only: contextvars.ContextVar[bool] = contextvars.ContextVar("forge_teacher_only", default=False)


def set_local_server(fn: LocalServer | None) -> LocalServer | None:
    """Install ``fn(site, args) -> result | None`` as the local answerer; returns the previous one.

    For every ``by llm()`` call the plugin first asks ``fn`` with the call-site
    id and the JSON-able arguments.  A non-None answer (the JSON-able result,
    e.g. a dict for an object return type) is converted to the function's
    return type and returned to the program without calling the model; None
    (or an exception, or an answer that does not fit the return type) falls
    through to the model.  ``None`` removes the answerer.

    An answerer that also has a ``shadow_for(site) -> Shadow | None`` method
    (a :class:`SiteAnswerer`, e.g. ``generator.routing.SiteServer``) is asked,
    after the model answered a call, whether a student should answer the same
    call in the background: its answer is validated like the model's and
    recorded unserved (``served=False``), as the shadow evidence the router's
    state machine reads.
    """
    global _local_server
    previous, _local_server = _local_server, fn
    return previous


def get_local_server() -> LocalServer | None:
    """The installed local answerer, if any."""
    return _local_server


@contextlib.contextmanager
def teacher_only() -> Iterator[None]:
    """Inside the block the local answerer is skipped: calls go to the model.

    The teacher backend uses it so that a student serving the same site can
    never answer a request that was routed to the teacher.
    """
    token = _teacher_only.set(True)
    try:
        yield
    finally:
        _teacher_only.reset(token)


def local_server_allowed() -> bool:
    """False inside :func:`teacher_only`."""
    return not _teacher_only.get()
