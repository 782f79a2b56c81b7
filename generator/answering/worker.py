"""One background thread with a short backlog, for work that must never delay the caller.

Shadow answers and spot checks (``generator.routing``) and the capture
plugin's shadow answers (``generator.capture``) run here: a job that finds the
backlog full is refused (``submit`` returns False) rather than queued without
bound, so the evidence just grows more slowly.  Imports nothing heavy: the
capture plugin loads while jaclang itself is loading.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable


class BoundedWorker:
    """A single worker thread, started on first use, holding at most ``max_backlog`` unfinished jobs."""

    def __init__(self, name: str, max_backlog: int) -> None:
        self.name = name
        self.max_backlog = max_backlog
        self._lock = threading.Lock()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._pending: set[cf.Future[None]] = set()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False (and nothing queued) when the backlog is full."""
        with self._lock:
            self._pending = {f for f in self._pending if not f.done()}
            if len(self._pending) >= self.max_backlog:
                return False
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=self.name)
            self._pending.add(self._pool.submit(job))
            return True

    def drain(self, timeout: float | None = None) -> int:
        """Wait (up to ``timeout`` s) for the queued jobs; returns how many are still running."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return 0
        return len(cf.wait(pending, timeout=timeout).not_done)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the thread (finishing the running job when ``wait``; queued ones are cancelled); reusable after."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
