"""The engine's telemetry, written to the generator's store.

:class:`StoreSink` implements the engine's ``TelemetrySink``: ``emit`` only
appends to a buffer (it is called every turn, on the game thread); the buffer
is written in one transaction when a level ends or is scored, on ``flush`` and
on ``close``.  A ``LevelScored`` event also stores the fun score beside the
generation that made the level, which is what the trainer and the router join
on.  A store that cannot be written never breaks the game: the failure is
logged and the events stay buffered for the next flush.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from generator.store import Store

log = logging.getLogger(__name__)

__all__ = ["StoreSink"]

_FLUSH_ON: Final = frozenset({"level_end", "level_scored"})
_MAX_BUFFER: Final = 200_000  # events kept while the store is unwritable, before dropping the oldest


class StoreSink:
    """Telemetry sink that writes events (and fun scores) to a :class:`Store`.

    ``owns_store``: close the store when the sink is closed (the facade's sink
    shares the facade's store and leaves it open).
    """

    def __init__(self, store: Store, *, owns_store: bool = False) -> None:
        self.store = store
        self._owns_store = owns_store
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def emit(self, event: Any) -> None:
        with self._lock:
            if self._closed:
                log.warning("telemetry event %s emitted after the sink was closed; dropped", _tag(event))
                return
            self._buffer.append(event)
            if len(self._buffer) > _MAX_BUFFER:
                del self._buffer[: len(self._buffer) - _MAX_BUFFER]
                log.warning("store %s unwritable for long: dropped the oldest telemetry events", self.store.path)
        if _tag(event) in _FLUSH_ON:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, []
        if not pending:
            return
        try:
            self.store.record_events(pending)
        except Exception:  # noqa: BLE001 - telemetry must never stop the game
            log.exception("could not write %d telemetry events to %s; will retry", len(pending), self.store.path)
            with self._lock:
                self._buffer[:0] = pending
            return
        for ev in pending:
            if _tag(ev) == "level_scored" and getattr(ev, "generation_id", None):
                try:
                    self.store.record_fun(ev.generation_id, ev.fun, ev.features)
                except Exception:  # noqa: BLE001 - the LevelScored event itself is stored
                    log.exception("could not store the fun score of %s", ev.generation_id)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True
        if self._owns_store:
            self.store.close()

    @property
    def pending(self) -> int:
        """Events emitted but not yet written."""
        with self._lock:
            return len(self._buffer)

    def __enter__(self) -> StoreSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tag(event: Any) -> str | None:
    config = getattr(type(event), "__struct_config__", None)
    if config is not None and config.tag is not None:
        return str(config.tag)
    if isinstance(event, dict):
        return event.get("type")
    return None
