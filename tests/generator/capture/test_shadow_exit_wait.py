"""The exit wait for shadow answers is a bound: queued answers whose turn comes after it are skipped.

Measured on a real run (docs/benchmarks.md, "Distilled call site end to end"): a student whose
first answers took 25-29 s each kept a 30-call program alive for 209 s after its last call, though
`shadow_exit_wait_s` was 30 s, because the deadline was cleared while one answer was still running
and every answer queued behind it then ran in full.
"""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

from generator.capture import shadow


def test_answers_queued_behind_a_slow_one_are_skipped_after_the_exit_wait(monkeypatch):
    done: list[str] = []
    monkeypatch.setattr(shadow, "_shadow_record", lambda call, sh, tid: SimpleNamespace())
    monkeypatch.setattr(shadow, "_record_skipped", lambda call, sh, tid, why: done.append("skipped"))
    monkeypatch.setattr(shadow, "store_record", lambda rec: done.append("answered"))
    monkeypatch.setattr(shadow, "as_local_answer", lambda answer: None)
    monkeypatch.setattr(shadow, "_shadow_verdict", lambda call, local: (False, []))
    drain = shadow.drain_shadows
    monkeypatch.setattr(shadow, "drain_shadows", lambda timeout=None: drain(min(timeout or 0.2, 0.2)))

    slow = SimpleNamespace(answer=lambda args: time.sleep(0.5))  # each answer outlasts the whole wait
    for _ in range(6):
        assert shadow._shadow_worker.submit(functools.partial(shadow._run_shadow, SimpleNamespace(args={}), slow, None))
    assert shadow.finish_queued(0.1) >= 1  # the first answer is still running when the wait ends
    assert drain(10) == 0
    assert done.count("answered") == 1 and done.count("skipped") == 5
