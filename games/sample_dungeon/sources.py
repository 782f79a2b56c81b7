"""Where the sample dungeon's levels come from.

``generator``: the generator facade (``generator.LevelGenerator``: routing,
validation, recording into the store).  ``procedural``: the offline
procedural generator alone.  ``samples``: the engine's hand-made levels
(no generator needed; handy for tests and demos of the rules).  ``auto``
takes the first that can be built, in that order.  Imports are lazy so the
game starts even when a part of the generator is missing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Final

from engine.core.errors import LevelSourceError
from engine.core.level import LevelSpec
from engine.core.samples import sample_level
from engine.core.source import LevelSource, SourcedLevel
from engine.core.telemetry import TelemetrySink

log = logging.getLogger(__name__)

SOURCE_KINDS: Final = ("auto", "generator", "procedural", "samples")


class ProceduralSource:
    """Levels from ``generator.backends.procedural.generate_procedural`` (offline, always valid)."""

    backend = "procedural"

    def __init__(self) -> None:
        try:
            from generator.backends.procedural import generate_procedural
        except ImportError as exc:
            raise LevelSourceError(
                f"the procedural generator is not available ({exc}); use --source samples, "
                "or install the full package: pip install -e ."
            ) from exc
        self._generate = generate_procedural

    def start_session(self, session_id: str) -> None:
        pass

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel:
        level = self._generate(spec, seed)
        return SourcedLevel(level, generation_id=f"proc-{uuid.uuid4().hex[:12]}", backend=self.backend)


class SampleSource:
    """The engine's hand-made levels in turn (balanced, then trivial, then balanced...); ignores the spec."""

    backend = "samples"

    def __init__(self, kinds: tuple[str, ...] = ("balanced", "trivial")) -> None:
        self.kinds = kinds
        self._served = 0

    def start_session(self, session_id: str) -> None:
        pass

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel:
        kind = self.kinds[self._served % len(self.kinds)]
        self._served += 1
        return SourcedLevel(sample_level(kind), generation_id=None, backend=self.backend)


@dataclass
class OpenedSource:
    """A source plus what comes with it: the store's telemetry sink when there is one."""

    source: LevelSource
    kind: str
    store_sink: TelemetrySink | None = None

    def close(self) -> None:
        if self.store_sink is not None:
            self.store_sink.close()
        close = getattr(self.source, "close", None)
        if callable(close):
            close()


def _open_generator(data_dir: str | None) -> OpenedSource:
    try:
        from generator import LevelGenerator
    except ImportError as exc:
        raise LevelSourceError(
            f"the generator facade is not available ({exc}); use --source procedural or samples"
        ) from exc
    # router="auto": each session start reloads per-site routing and promoted students
    gen = LevelGenerator(data_dir=data_dir, router="auto")
    sink = None
    try:
        sink = gen.telemetry_sink()
    except Exception as exc:  # noqa: BLE001 - the JSONL file still gets every event
        log.warning("generator store unavailable for telemetry (%s); writing JSONL only", exc)
    return OpenedSource(gen, "generator", sink)


def open_source(kind: str = "auto", *, data_dir: str | None = None) -> OpenedSource:
    """Build the level source named ``kind`` (one of :data:`SOURCE_KINDS`)."""
    if kind not in SOURCE_KINDS:
        raise LevelSourceError(f"unknown level source {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
    if kind == "generator":
        return _open_generator(data_dir)
    if kind == "procedural":
        return OpenedSource(ProceduralSource(), "procedural")
    if kind == "samples":
        return OpenedSource(SampleSource(), "samples")
    for candidate in ("generator", "procedural"):
        try:
            opened = open_source(candidate, data_dir=data_dir)
            if candidate == "generator":
                _check_generator_serves(opened)
            return opened
        except Exception as exc:  # noqa: BLE001 - fall through to the next kind
            log.warning("level source %r unavailable (%s); trying the next one", candidate, exc)
    log.warning("no generator is available: playing the built-in sample levels")
    return OpenedSource(SampleSource(), "samples")


def _check_generator_serves(opened: OpenedSource) -> None:
    """The facade's last resort is the procedural generator: make sure it exists."""
    try:
        import generator.backends.procedural  # noqa: F401
    except ImportError as exc:
        opened.close()
        raise LevelSourceError(f"the generator's procedural fallback is missing ({exc})") from exc
