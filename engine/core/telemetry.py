"""What happened while a level was played: typed events and where they go.

Every event is a tagged msgspec Struct (``"type"`` names it on the wire) and
carries ``level_id``, ``generation_id`` (the generator's id of the call that
made the level, so a fun score can be joined to it) and ``turn``.

Sinks implement :class:`TelemetrySink` (``emit``/``flush``/``close``).
:class:`JsonlSink` buffers one level at a time and makes it durable (write,
flush, fsync) when the level ends, so a crash loses at most the events of the
level being played; a normal quit loses nothing.

>>> ev = Move(level_id="L1", generation_id=None, turn=3, x=4, y=5)
>>> encode_event(ev)
b'{"type":"move","x":4,"y":5,"level_id":"L1","generation_id":null,"turn":3}'
>>> decode_event(encode_event(ev)) == ev
True
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

log = logging.getLogger(__name__)


class Event(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    """Fields every event has."""

    level_id: str
    generation_id: str | None
    turn: int


class LevelStart(Event, tag="level_start"):
    """A level (or a retry of it) begins.  ``par_turns`` is the critical path length."""

    width: int
    height: int
    spawn_x: int
    spawn_y: int
    exit_x: int
    exit_y: int
    enemies: int
    items: int
    par_turns: int
    reachable_tiles: int
    player_hp: int
    session_id: str | None = None
    attempt: int = 1
    seed: int = 0
    name: str = ""
    theme: str = ""


class Move(Event, tag="move"):
    """The player stepped to ``(x, y)``."""

    x: int
    y: int


class Waited(Event, tag="wait"):
    """The player let a turn pass."""


class Attack(Event, tag="attack"):
    """``attacker`` (``"player"`` or an enemy kind) struck ``target`` standing at ``(x, y)``."""

    attacker: str
    target: str
    x: int
    y: int
    damage: int


class DamageDealt(Event, tag="damage_dealt"):
    """The player hurt enemy number ``enemy`` (its index in the level's list)."""

    enemy: int
    kind: str
    amount: int
    enemy_hp: int
    killed: bool


class DamageTaken(Event, tag="damage_taken"):
    """The player was hurt by enemy number ``enemy``; ``hp`` is what is left."""

    enemy: int
    kind: str
    amount: int
    hp: int


class ItemPickup(Event, tag="item_pickup"):
    kind: str
    x: int
    y: int


class Death(Event, tag="death"):
    """The player died; ``cause`` is the enemy kind."""

    cause: str
    x: int
    y: int


class Retry(Event, tag="retry"):
    """The player starts the same level again after dying (``attempt`` is the new one)."""

    attempt: int


class Quit(Event, tag="quit"):
    reason: str = "player"


class LevelEnd(Event, tag="level_end"):
    """An attempt at a level ended.  ``outcome`` is ``completed``, ``died`` or ``quit``."""

    outcome: str
    hp: int
    max_hp: int
    min_hp: int
    explored_tiles: int
    reachable_tiles: int
    kills: int
    enemies_total: int
    enemies_engaged: int
    damage_dealt: int
    damage_taken: int
    gold: int
    items_picked: int
    attempt: int = 1


class LevelScored(Event, tag="level_scored"):
    """The implicit fun score of a played level (all attempts), with its parts."""

    fun: float
    features: dict[str, float]


AnyEvent = (
    LevelStart | Move | Waited | Attack | DamageDealt | DamageTaken | ItemPickup | Death | Retry
    | Quit | LevelEnd | LevelScored
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    return _decoder.decode(data)


@runtime_checkable
class TelemetrySink(Protocol):
    """Where events go.  ``emit`` must be cheap (called every turn); ``flush``
    makes everything emitted so far durable; ``close`` flushes and releases."""

    def emit(self, event: Event) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps events in a list (tests, bots, fun scoring)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def clear(self) -> None:
        self.events.clear()


class TeeSink:
    """Sends every event to several sinks (e.g. the store and a JSONL file)."""

    def __init__(self, *sinks: TelemetrySink) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def emit(self, event: Event) -> None:
        for s in self.sinks:
            s.emit(event)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class JsonlSink:
    """Appends events to a JSON-lines file, one level at a time.

    Events are buffered in memory and written, flushed and fsynced when a
    :class:`LevelEnd` or :class:`LevelScored` arrives, on :meth:`flush` and on
    :meth:`close`.  A crash therefore loses at most the current level's
    events, and never leaves a half-written line behind except the very last
    one, which :func:`read_events` skips.  Safe to use from several threads.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._buffer: list[bytes] = []
        self._lock = threading.Lock()
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def emit(self, event: Event) -> None:
        line = _encoder.encode(event) + b"\n"
        with self._lock:
            self._buffer.append(line)
        if isinstance(event, (LevelEnd, LevelScored)):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self._buffer:
                self._file.write(b"".join(self._buffer))
                self._buffer.clear()
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._file.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """Events from a JSONL file written by :class:`JsonlSink`.

    A torn last line (the process died mid-write) is skipped with a warning;
    a bad line elsewhere raises ``msgspec.DecodeError`` naming the line.
    """
    lines = Path(path).read_bytes().split(b"\n")
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if all(not rest.strip() for rest in lines[number:]):
                log.warning("%s: skipped a torn last line %d (%s)", path, number, exc)
                break
            raise msgspec.DecodeError(f"{path}: line {number}: {exc}") from None
    return events


def events_by_level(events: list[Event]) -> dict[str, list[Event]]:
    """Group events by ``level_id``, keeping order (levels in order of first event)."""
    grouped: dict[str, list[Event]] = {}
    for ev in events:
        grouped.setdefault(ev.level_id, []).append(ev)
    return grouped
