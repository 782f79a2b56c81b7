"""Where levels come from: the protocol the engine asks, the generator implements.

The engine never imports the generator.  A game hands a :class:`Session` any
object with ``get_level``; :class:`generator.LevelGenerator` is the real one,
and tests use small sources of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from engine.core.level import Level, LevelSpec


@dataclass(frozen=True, slots=True)
class SourcedLevel:
    """A level plus where it came from, so telemetry and fun scores can be joined to it."""

    level: Level
    generation_id: str | None = None  #: the store's id of the generation call, if recorded
    backend: str = "unknown"  #: "procedural", "llm", "student", ...
    model_version: str | None = None
    attempts: int = 1
    latency_ms: float = 0.0


@runtime_checkable
class LevelSource(Protocol):
    """Supplies levels.  ``get_level`` may be slow and is called off the game thread;
    it must raise :class:`~engine.core.errors.LevelSourceError` (or any exception,
    which the session wraps) rather than hang forever."""

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel: ...

    def start_session(self, session_id: str) -> None:
        """Called once when a play session begins: the place to reload models or routing."""
        ...
