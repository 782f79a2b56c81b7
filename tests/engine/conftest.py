"""Level sources for engine tests: fixed ASCII levels, slow or failing on demand."""

from __future__ import annotations

import threading

import pytest

from engine.core.level import LevelSpec
from engine.core.samples import sample_level
from engine.core.source import SourcedLevel


class AsciiSource:
    """Serves the hand-made sample levels in turn; records every request."""

    def __init__(self, kinds=("balanced",), *, fail_times: int = 0, gate: bool = False) -> None:
        self.kinds = kinds
        self.requests: list[tuple[LevelSpec, int]] = []
        self.sessions: list[str] = []
        self.fail_times = fail_times
        self.gates: dict[int, threading.Event] = {}
        self.called: dict[int, threading.Event] = {}
        self.gate = gate
        self._lock = threading.Lock()

    def _event(self, table, n):
        with self._lock:
            return table.setdefault(n, threading.Event())

    def start_session(self, session_id: str) -> None:
        self.sessions.append(session_id)

    def get_level(self, spec: LevelSpec, *, seed: int) -> SourcedLevel:
        n = len(self.requests)
        self.requests.append((spec, seed))
        self._event(self.called, n).set()
        if self.gate:  # the test decides when this level is "generated"
            assert self._event(self.gates, n).wait(30), "test never released the source"
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("the model server is down")
        kind = self.kinds[n % len(self.kinds)]
        return SourcedLevel(sample_level(kind), generation_id=f"gen-{n}", backend="ascii")

    def release(self, n: int) -> None:
        self._event(self.gates, n).set()

    def wait_called(self, n: int) -> bool:
        return self._event(self.called, n).wait(30)


@pytest.fixture
def ascii_source():
    return AsciiSource
