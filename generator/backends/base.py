"""Backends: the one small protocol every level producer implements.

A backend turns a :class:`BackendRequest` (spec, seed, the previous attempt's
validation feedback, a deadline) into a :class:`BackendOutput` (the raw text it
produced, plus what it cost).  It does not validate: the facade
(:class:`generator.facade.LevelGenerator`) validates every output, retries with
the failures as feedback and falls through to the next backend.

A backend raises :class:`~generator.errors.BackendError` when it cannot
produce anything (API down, model missing, timeout); any other exception is
treated the same way by the facade, but is a bug worth a log line.

>>> from engine.core.level import LevelSpec
>>> from generator.backends import ProceduralBackend
>>> spec = LevelSpec(width=16, height=12, difficulty=2, enemies=1, items=1, theme="crypt")
>>> out = ProceduralBackend().generate(BackendRequest(spec=spec, seed=7))
>>> out.level.width
16
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.core.level import Level, LevelSpec

__all__ = [
    "Backend",
    "BackendOutput",
    "BackendRequest",
    "sampling_seed",
    "time_left",
]


def sampling_seed(seed: int, attempt: int = 1) -> int:
    """The first seed :func:`generator.local.decoding.generate_valid_level` draws with for a request's
    ``seed`` and ``attempt``.

    Distinct per request seed and per attempt (1-based), so a retry is not the
    same sample again; the promotion gates judge held-out spec ``i`` with
    ``sampling_seed(seed + i)``, as the served student would draw it.

    >>> [sampling_seed(3, a) for a in (1, 2)]
    [303, 320]
    """
    return seed * 101 + (attempt - 1) * 17


@dataclass(frozen=True)
class BackendRequest:
    """What the facade asks one backend for, for one attempt."""

    spec: LevelSpec
    seed: int
    feedback: str | None = None  #: the previous attempt's ``ValidationReport.feedback()``
    attempt: int = 1  #: 1-based attempt number at this backend
    deadline: float | None = None  #: ``time.monotonic()`` value by which to answer, if any

    def seconds_left(self) -> float | None:
        """Seconds until :attr:`deadline` (may be negative), or None without a deadline."""
        return time_left(self.deadline)

    def sampling_seed(self) -> int:
        """The seed a sampling backend (student, remote student) draws this attempt with.

        Distinct per request seed and per attempt, so a retry is not the same sample again.

        >>> from engine.core.level import LevelSpec
        >>> spec = LevelSpec(width=16, height=12, difficulty=1, enemies=0, items=0, theme="crypt")
        >>> [BackendRequest(spec, seed=3, attempt=a).sampling_seed() for a in (1, 2)]
        [303, 320]
        """
        return sampling_seed(self.seed, self.attempt)


@dataclass
class BackendOutput:
    """What a backend produced.  ``raw`` is always the text the validator sees;
    ``level`` may carry an already-parsed level (procedural, student) so the
    facade can skip a decode."""

    raw: str
    model: str
    model_version: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    messages: list[Any] | None = None
    confidence: float | None = None
    level: Level | None = None


@runtime_checkable
class Backend(Protocol):
    """Anything that can propose a level for a spec.

    ``name`` is what the store records as the call's backend ("procedural",
    "llm", "student", ...).  ``generate`` raises
    :class:`~generator.errors.BackendError` when it cannot answer.
    """

    name: str

    def generate(self, request: BackendRequest) -> BackendOutput: ...


def time_left(deadline: float | None) -> float | None:
    """Seconds until a ``time.monotonic()`` deadline, or None when there is none."""
    return None if deadline is None else deadline - time.monotonic()
