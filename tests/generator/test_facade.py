"""LevelGenerator: cascade, retries with feedback, deadline, recording, routing hook.

The fault tests use a small stand-in validator and fallback so they judge the
facade alone; the last tests run the real validator and procedural generator.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from engine.core.level import Level, LevelSpec, Placed
from engine.core.source import LevelSource, SourcedLevel
from generator.backends import BackendOutput, BackendRequest, ProceduralBackend
from generator.store.callsite import LEVEL_SITE
from generator.settings import GeneratorConfig
from generator.errors import BackendError, ConfigError, GeneratorError
from generator.facade import GeneratedLevel, LevelGenerator, make_backend
from generator.store.records import CURRENT_SLOT
from generator.store import Store

SPEC = LevelSpec(width=20, height=14, difficulty=3, enemies=1, items=1, theme="crypt")


def box_level(spec: LevelSpec, name: str = "box") -> Level:
    grid = np.ones((spec.height, spec.width), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    return Level(name=name, grid=grid, spawn=(1, 1), exit=(spec.width - 2, spec.height - 2),
                 enemies=[Placed("rat", spec.width - 3, spec.height - 2)], items=[Placed("gold", 2, 2)],
                 theme=spec.theme)


@dataclass
class Report:
    valid: bool
    failures: tuple
    level: Level | None

    def feedback(self) -> str:
        return "; ".join(f"{f['code']}: {f['message']}" for f in self.failures)


def fake_validate(x, spec):
    try:
        level = x if isinstance(x, Level) else Level.from_json(x)
    except Exception as exc:  # noqa: BLE001
        return Report(False, ({"gate": "V0", "code": "V0.parse", "message": str(exc), "where": "$"},), None)
    if (level.width, level.height) != (spec.width, spec.height) or level.name == "invalid":
        return Report(False, ({"gate": "V1", "code": "V1.size", "message": "wrong size", "where": "$.rows"},), level)
    return Report(True, (), level)


class FakeProcedural(ProceduralBackend):
    def generate(self, request):
        return BackendOutput(raw=box_level(request.spec, "proc").to_json().decode(), model="procedural",
                             model_version="fake-1", level=box_level(request.spec, "proc"))


class Scripted:
    """Answers from a list: a str is raw output, an exception is raised, a Level is returned parsed."""

    def __init__(self, name, answers):
        self.name = name
        self.answers = list(answers)
        self.requests: list[BackendRequest] = []

    def generate(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(request)
        if isinstance(answer, Level):
            return BackendOutput(raw=answer.to_json().decode(), model=self.name, level=answer)
        return BackendOutput(raw=answer, model=self.name, prompt_tokens=10, completion_tokens=5, cost_usd=0.001)


def good(spec=SPEC, name="good"):
    return box_level(spec, name).to_json().decode()


def wrong_size():
    return box_level(LevelSpec(width=30, height=14, difficulty=3, enemies=1, items=1, theme="crypt")).to_json().decode()


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "forge.db") as s:
        yield s


def make(backends, store, **kw):
    kw.setdefault("validator", fake_validate)
    kw.setdefault("fallback", FakeProcedural())
    return LevelGenerator(backends, store=store, **kw)


def attempts(store):
    return [c.record for c in store.iter_calls(LEVEL_SITE)]


def test_procedural_only_serves_and_records_one_served_call(store):
    gen = make([], store)
    assert isinstance(gen, LevelSource)
    got = gen.get_level(SPEC, seed=5)
    assert isinstance(got, SourcedLevel) and isinstance(got, GeneratedLevel)
    assert (got.backend, got.attempts, got.model_version, got.tried) == ("procedural", 1, "fake-1", ("procedural",))
    (rec,) = attempts(store)
    assert rec.served and rec.valid and rec.call_id == got.generation_id and rec.request_id == got.request_id
    assert rec.args == {"spec": SPEC.to_dict(), "seed": 5} and rec.result["name"] == "proc"


def test_garbage_is_retried_with_feedback_then_falls_back(store):
    llm = Scripted("llm", ["this is not json"])
    got = make([llm], store, max_attempts=3).generate(SPEC, seed=1)
    assert got.backend == "procedural" and got.attempts == 4 and got.tried == ("llm", "procedural")
    assert [r.feedback for r in llm.requests][0] is None
    assert all("V0.parse" in r.feedback for r in llm.requests[1:]) and [r.attempt for r in llm.requests] == [1, 2, 3]
    recs = attempts(store)
    assert [(r.backend, r.attempt, r.valid, r.served) for r in recs] == [
        ("llm", 1, False, False), ("llm", 2, False, False), ("llm", 3, False, False), ("procedural", 1, True, True)]
    assert recs[0].raw_output == "this is not json" and recs[0].failures[0]["code"] == "V0.parse"
    assert recs[1].args["feedback"].startswith("V0.parse")
    assert (recs[0].prompt_tokens, recs[0].cost_usd) == (10, 0.001)
    assert len({r.request_id for r in recs}) == 1


def test_a_retry_with_feedback_can_succeed(store):
    llm = Scripted("llm", [wrong_size(), good()])
    got = make([llm], store).generate(SPEC, seed=2)
    assert (got.backend, got.attempts, got.level.name) == ("llm", 2, "good")
    assert "V1.size" in llm.requests[1].feedback and got.feedback == (llm.requests[1].feedback,)
    assert [(r.valid, r.served) for r in attempts(store)] == [(False, False), (True, True)]


def test_raising_backend_moves_on_without_retrying(store):
    dead = Scripted("llm", [BackendError("401 unauthorized")])
    buggy = Scripted("student", [ZeroDivisionError("oops")])
    got = make([dead, buggy], store).generate(SPEC, seed=3)
    assert got.backend == "procedural" and got.attempts == 3
    recs = attempts(store)
    assert recs[0].error == "BackendError: 401 unauthorized" and recs[1].error.startswith("ZeroDivisionError")
    assert len(dead.requests) == 1 and len(buggy.requests) == 1


def test_invalid_levels_cascade_to_the_next_backend(store):
    bad = Scripted("student", [box_level(SPEC, "invalid")])
    teacher = Scripted("llm", [good()])
    got = make([bad, teacher], store, max_attempts=2).generate(SPEC, seed=4)
    assert (got.backend, got.attempts, got.tried) == ("llm", 3, ("student", "llm"))
    assert [r.backend for r in attempts(store)] == ["student", "student", "llm"]


def test_wrong_return_type_is_a_failed_attempt(store):
    weird = Scripted("llm", [lambda req: {"rows": []}])
    got = make([weird], store, max_attempts=1).generate(SPEC, seed=4)
    assert got.backend == "procedural"
    assert "not BackendOutput" in attempts(store)[0].error


def test_a_hung_backend_cannot_miss_the_deadline(store):
    release = threading.Event()
    hung = Scripted("llm", [lambda req: release.wait(30) and None])
    try:
        gen = make([hung], store, config=GeneratorConfig(deadline_s=0.5, procedural_reserve_s=0.1))
        got = gen.generate(SPEC, seed=6)
    finally:
        release.set()
    assert got.backend == "procedural" and got.attempts == 2
    assert len(hung.requests) == 1  # a backend that timed out gets no second try
    rec = attempts(store)[0]
    assert rec.error.startswith("timeout") and rec.valid is False
    assert hung.requests[0].deadline is not None


def test_no_time_left_skips_straight_to_the_fallback(store):
    llm = Scripted("llm", [good()])
    gen = make([llm], store, config=GeneratorConfig(deadline_s=0.5, procedural_reserve_s=1.0))
    got = gen.generate(SPEC, seed=7)
    assert got.backend == "procedural" and not llm.requests


def test_capture_slot_is_set_in_the_worker_and_merged(store):
    def with_capture(req):
        slot = CURRENT_SLOT.get()
        assert slot is not None and slot.site == LEVEL_SITE
        slot.messages = [{"role": "user", "content": "design"}]
        slot.model, slot.prompt_tokens, slot.completion_tokens, slot.cost_usd, slot.calls = "gpt-x", 120, 400, 0.02, 1
        return BackendOutput(raw=good(), model="")

    got = make([Scripted("llm", [with_capture])], store).generate(SPEC, seed=8)
    assert got.backend == "llm" and CURRENT_SLOT.get() is None
    (rec,) = attempts(store)
    assert (rec.model, rec.prompt_tokens, rec.completion_tokens, rec.cost_usd) == ("gpt-x", 120, 400, 0.02)
    assert rec.messages == [{"role": "user", "content": "design"}]


def test_fallback_that_fails_is_an_error_not_an_invalid_level(store):
    class Broken(ProceduralBackend):
        def generate(self, request):
            return BackendOutput(raw="{}", model="procedural")

    with pytest.raises(GeneratorError, match="bug"):
        make([], store, fallback=Broken()).generate(SPEC, seed=1)
    assert len(attempts(store)) == 3


def test_a_broken_store_never_costs_a_level(store):
    def fail(records):
        raise RuntimeError("disk full")

    store.record_calls = fail  # type: ignore[method-assign]
    got = make([Scripted("llm", [good()])], store).generate(SPEC, seed=1)
    assert got.backend == "llm"


def test_router_hook_decides_the_cascade(store):
    student, teacher = Scripted("student", [good(name="s")]), Scripted("llm", [good(name="t")])

    class TwoArg:
        refreshed = 0

        def refresh(self):
            TwoArg.refreshed += 1

        def backends_for(self, site, defaults):
            assert site == LEVEL_SITE and [b.name for b in defaults] == ["llm", "procedural"]
            return [student, *defaults]

    class OneArg:
        def backends_for(self, site):
            return [teacher]

    class Broken:
        def backends_for(self, site, defaults):
            raise RuntimeError("no")

    gen = make([teacher], store, router=TwoArg())
    gen.start_session("s1")
    assert TwoArg.refreshed == 1 and gen.generate(SPEC, seed=1).level.name == "s"
    assert make([student], store, router=OneArg()).generate(SPEC, seed=1).level.name == "t"
    assert make([teacher], store, router=Broken()).generate(SPEC, seed=1).level.name == "t"
    assert [r.session_id for r in attempts(store)][0] == "s1"
    assert store.sessions()[0][0] == "s1"


def test_start_session_reloads_settings(store, monkeypatch):
    gen = LevelGenerator(store=store, validator=fake_validate, fallback=FakeProcedural())
    assert [b.name for b in gen.backends] == ["procedural"]
    monkeypatch.setenv("FORGE_DEADLINE_S", "7.5")
    gen.start_session("s2")
    assert gen.config.deadline_s == 7.5


def test_default_store_and_telemetry_sink(_forge_home):
    with LevelGenerator([], validator=fake_validate, fallback=FakeProcedural()) as gen:
        got = gen.generate(SPEC, seed=1)
        sink = gen.telemetry_sink()
        assert sink.store is gen.store and gen.store.path == _forge_home / "forge.db"
        assert gen.store.get_call(got.generation_id).record.served
    with pytest.raises(GeneratorError, match="records nothing"):
        LevelGenerator([], store=False, validator=fake_validate, fallback=FakeProcedural()).telemetry_sink()


def test_make_backend_errors_say_what_to_do():
    assert isinstance(make_backend("procedural"), ProceduralBackend)
    with pytest.raises(ConfigError, match="no student model is promoted"):
        make_backend("student")
    with pytest.raises(ConfigError, match="unknown backend"):
        make_backend("gpt")


# ------------------------------------------------------------------ with the real validator and procedural


def test_real_pipeline_serves_valid_levels(store):
    pytest.importorskip("generator.backends.procedural")
    validation = pytest.importorskip("generator.validation")
    gen = LevelGenerator(["procedural"], store=store)
    for i, spec in enumerate([SPEC, LevelSpec(width=64, height=48, difficulty=10, enemies=30, items=20, theme="cave"),
                              LevelSpec(width=16, height=12, difficulty=1, enemies=0, items=0, theme="fortress")]):
        got = gen.generate(spec, seed=i)
        assert validation.validate_level(got.level, spec).valid
    assert all(r.valid and r.served for r in attempts(store))


def test_real_validator_feedback_reaches_the_retry(store):
    pytest.importorskip("generator.backends.procedural")
    pytest.importorskip("generator.validation")
    llm = Scripted("llm", ['{"name": "x"}', wrong_size()])
    got = LevelGenerator([llm], store=store, max_attempts=2).generate(SPEC, seed=3)
    assert got.backend == "procedural"
    assert llm.requests[1].feedback and "V0" in llm.requests[1].feedback


def test_an_unavailable_configured_backend_is_skipped(store, monkeypatch):
    monkeypatch.setenv("FORGE_BACKENDS", "student,procedural")
    gen = LevelGenerator(store=store, validator=fake_validate, fallback=FakeProcedural())
    assert [b.name for b in gen.backends] == ["procedural"]
    with pytest.raises(ConfigError, match="no student model"):
        LevelGenerator(["student"], store=store)


def test_routing_offline_shadows_a_student_against_procedural(store):
    pytest.importorskip("generator.routing")
    from generator.routing import ShadowBackend

    student = Scripted("student", [box_level(SPEC, "invalid")])

    class ShadowRouter:
        def backends_for(self, site, defaults):
            return [ShadowBackend(defaults[0], student, site, store, "v1", validator=lambda o, r: (False, []))]

    got = make([], store, router=ShadowRouter()).generate(SPEC, seed=1)
    assert got.backend == "procedural" and got.attempts == 1
    recs = attempts(store)
    assert sorted((r.backend, r.served) for r in recs) == [("procedural", True), ("student", False)]


def test_auto_router_uses_store_and_registry(store):
    pytest.importorskip("generator.routing")
    gen = make([], store, router="auto")
    gen.start_session("s1")  # nothing promoted: the configured cascade serves
    assert gen.generate(SPEC, seed=1).backend == "procedural"
    assert type(gen.router).__name__ == "Router" and gen.router.store is store
    with pytest.raises(ConfigError, match="needs a store"):
        LevelGenerator([], store=False, router="auto")
