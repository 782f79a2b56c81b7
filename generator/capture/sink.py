"""Where call records go: a facade's slot, observers, a sink set by tests, or the store (a pending file while it cannot open)."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from generator.store.records import CURRENT_SLOT, CallRecord, CaptureSlot
from generator.store.redact import scrub

log = logging.getLogger(__name__)

RecordSink = Callable[[CallRecord], None]

PENDING_FILE = "capture-pending.jsonl"

_record_sink: RecordSink | None = None
_observers: contextvars.ContextVar[tuple[list[CallRecord], ...]] = contextvars.ContextVar(
    "forge_capture_observers", default=()
)


def set_record_sink(fn: RecordSink | None) -> RecordSink | None:
    """Send records to ``fn`` instead of the store (tests, benchmarks); returns the previous sink."""
    global _record_sink
    previous, _record_sink = _record_sink, fn
    return previous


@contextlib.contextmanager
def observe() -> Iterator[list[CallRecord]]:
    """Collect the records of the ``by llm()`` calls made inside the block.

    Observing does not change where records go (slot or store); it lets a
    caller such as the teacher backend read what its call cost.

    >>> with observe() as seen:
    ...     pass
    >>> seen
    []
    """
    seen: list[CallRecord] = []
    token = _observers.set(_observers.get() + (seen,))
    try:
        yield seen
    finally:
        _observers.reset(token)



def emit(rec: CallRecord) -> None:
    """Deliver the record of the program's own call: observers, then the facade's slot or the sink."""
    for seen in _observers.get():
        seen.append(rec)
    slot = CURRENT_SLOT.get()
    if slot is not None:
        _fill_slot(slot, rec)
        return
    sink = _record_sink or _default_sink
    try:
        sink(rec)
    except Exception:
        log.warning("capture: the record sink failed for %s; record dropped", rec.site, exc_info=True)


def store_record(rec: CallRecord) -> None:
    """Send a record made off the program's path (a shadow answer) straight to the sink."""
    sink = _record_sink or _default_sink
    try:
        sink(rec)
    except Exception:
        log.warning("capture: the record sink failed for %s; record dropped", rec.site, exc_info=True)


def _fill_slot(slot: CaptureSlot, rec: CallRecord) -> None:
    slot.site = rec.site
    slot.model = rec.model
    slot.messages = rec.messages
    slot.output_schema = rec.output_schema
    slot.raw_output = rec.raw_output
    slot.prompt_tokens += rec.prompt_tokens
    slot.completion_tokens += rec.completion_tokens
    slot.cost_usd += rec.cost_usd
    slot.error = rec.error
    slot.calls += 1


# ----------------------------------------------------------------------------- shadow answers


class StoreSink:
    """Writes records to the data directory's store, or to a pending JSONL file while it cannot.

    One store is kept open, for the current ``FORGE_HOME``; when that changes
    (tests, tools switching data dirs) the old one is closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._home: str | None = None
        self._store_obj: Any = None

    def __call__(self, rec: CallRecord) -> None:
        home = os.environ.get("FORGE_HOME", "")
        with self._lock:
            store = self._store(home)
            if store is not None:
                try:
                    store.record_call(rec)
                    return
                except Exception:
                    log.warning("capture: the store refused a record; keeping it in %s", PENDING_FILE, exc_info=True)
            self._append_pending(rec)

    def current_store(self) -> Any:
        """The open store of the current ``FORGE_HOME`` (None while it cannot be opened)."""
        with self._lock:
            return self._store(os.environ.get("FORGE_HOME", ""))

    def _store(self, home: str) -> Any:
        if home == self._home:
            return self._store_obj
        self._close_current()
        self._home = home
        try:
            from generator.store import Store

            self._store_obj = Store.open(None)
        except ImportError:
            log.debug("capture: generator.store unavailable; records go to %s", PENDING_FILE)
        except Exception:
            log.warning("capture: cannot open the store; records go to %s", PENDING_FILE, exc_info=True)
        if self._store_obj is not None:
            self._drain_pending(self._store_obj)
        return self._store_obj

    @staticmethod
    def _pending_path() -> Path:
        from generator.paths import data_dir

        return data_dir() / "runs" / PENDING_FILE

    def _append_pending(self, rec: CallRecord) -> None:
        import msgspec

        line = scrub(msgspec.json.encode(rec).decode("utf-8"))
        with self._pending_path().open("ab") as fh:
            fh.write(line.encode("utf-8") + b"\n")

    def _drain_pending(self, store: Any) -> None:
        import msgspec

        path = self._pending_path()
        if not path.exists():
            return
        try:
            pending = [
                msgspec.json.decode(line, type=CallRecord) for line in path.read_bytes().splitlines() if line.strip()
            ]
            for rec in pending:
                store.record_call(rec)  # same call_id twice is replaced, so a retried drain is harmless
            path.unlink()
            log.info("capture: moved %d pending records into the store", len(pending))
        except Exception:
            log.warning("capture: could not move %s into the store; kept", path, exc_info=True)

    def _close_current(self) -> None:
        store, self._store_obj, self._home = self._store_obj, None, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def close(self) -> None:
        with self._lock:
            self._close_current()


_default_sink = StoreSink()
atexit.register(_default_sink.close)
