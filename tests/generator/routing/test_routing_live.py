"""The router with the real store, registry and facade; students are stand-ins (no torch).

Covers what a game sees: a promotion takes effect at the next session only,
the student is shadowed before it serves, a generation in flight at a swap
finishes on the model it started with, spot checks are recorded, a crashing
student still yields a valid level, and an injected regression rolls the site
back with its evidence on record.
"""

from __future__ import annotations

import threading

import pytest

from engine.core.level import LevelSpec
from generator.errors import ConfigError
from generator.backends import BackendOutput, BackendRequest
from generator.store.callsite import LEVEL_SITE
from generator.facade import LevelGenerator
from generator.backends.procedural import generate_procedural
from generator.local.registry import Registry
from generator.routing import Router, RoutingPolicy, RouteState
from generator.store import Store

SPEC = LevelSpec(width=24, height=16, difficulty=3, enemies=3, items=2, theme="crypt")


class StandInStudent:
    """Answers like a student would; ``mode`` lets a test inject a regression or a crash."""

    name = "student"

    def __init__(self, version: str) -> None:
        self.version = version
        self.mode = "good"
        self.calls = 0
        self.entered = threading.Event()  #: set when a call has started
        self.release: threading.Event | None = None  #: when set, each call waits for it
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def generate(self, request: BackendRequest) -> BackendOutput:
        self.calls += 1
        self.entered.set()
        if self.release is not None:
            assert self.release.wait(30), "the test never released the student"
        if self.mode == "crash":
            raise RuntimeError("worker process died (SIGSEGV)")
        if self.mode == "bad":
            return BackendOutput(raw='{"rows": ["###"', model="stand-in", model_version=self.version, confidence=-3.0)
        level = generate_procedural(request.spec, request.seed + 99)
        return BackendOutput(raw=level.to_json(), model="stand-in", model_version=self.version, confidence=-0.1,
                             level=level)


@pytest.fixture
def setup(tmp_path):
    store = Store.open(tmp_path / "forge.db")
    registry = Registry(tmp_path / "models")
    students: dict[str, StandInStudent] = {}

    def factory(site, model_dir, version):
        assert model_dir.is_dir()
        return students.setdefault(version, StandInStudent(version))

    policy = RoutingPolicy(min_shadow_samples=6, promote_lower_bound=0.6, spot_check_rate=0.0,
                           rollback_min_samples=6)
    router = Router(store, registry, policy=policy, student_factory=factory)
    gen = LevelGenerator(store=store, router=router, data_dir=tmp_path)
    yield gen, router, registry, store, students, tmp_path
    gen.close()
    store.close()


def _promote(registry: Registry, tmp_path, name: str = "art") -> str:
    src = tmp_path / name
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"stand-in weights")
    version = registry.add_version(LEVEL_SITE, src, {"base": "micro", "state": "passed"})
    registry.promote(LEVEL_SITE, version)
    return version


def _play(gen: LevelGenerator, n: int, seed0: int = 0) -> list:
    return [gen.generate(SPEC, seed=seed0 + i) for i in range(n)]


def test_promotion_takes_effect_at_the_next_session_shadow_first_then_local(setup):
    gen, router, registry, store, students, tmp = setup
    gen.start_session("s1")
    assert {g.backend for g in _play(gen, 6)} == {"procedural"}

    version = _promote(registry, tmp)
    # mid-session: nothing changes until the next session starts
    assert {g.backend for g in _play(gen, 2, 100)} == {"procedural"}
    assert router.status(LEVEL_SITE).state is RouteState.TEACHER

    gen.start_session("s2")
    assert router.status(LEVEL_SITE).state is RouteState.SHADOW
    served = _play(gen, 8, 200)
    assert {g.backend for g in served} == {"procedural"}, "a shadowed student is never served"
    router.drain(30)
    shadow = [c.record for c in store.iter_calls(LEVEL_SITE) if c.record.backend == "student"]
    assert len(shadow) == 8 and all(r.valid and not r.served and r.model_version == version for r in shadow)

    gen.start_session("s3")
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL
    local = _play(gen, 5, 300)
    assert {g.backend for g in local} == {"student"}
    assert all(g.model_version == version for g in local)
    events = store.site_events(LEVEL_SITE)
    assert any("shadow->local" in getattr(e, "kind", "") for e in events)


def test_a_generation_in_flight_finishes_on_the_model_it_started_with(setup):
    gen, router, registry, store, students, tmp = setup
    gen.start_session("s1")
    first = _promote(registry, tmp, "first")
    gen.start_session("s2")
    _play(gen, 8)
    router.drain(30)
    gen.start_session("s3")
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL
    old = students[first]
    old.release = threading.Event()
    old.entered.clear()
    result: list = []
    worker = threading.Thread(target=lambda: result.append(gen.generate(SPEC, seed=500)))
    worker.start()
    assert old.entered.wait(30), "the generation never reached the student"

    second = _promote(registry, tmp, "second")  # promoted while that level is being made
    gen.start_session("s4")  # the next session: the new version shadows first
    assert router.status(LEVEL_SITE).version == second
    assert not old.closed, "a student still answering is not closed under its request"
    old.release.set()
    worker.join(30)
    assert not worker.is_alive()
    assert old.closed, "no longer routed: closed once its last request ended"
    (level,) = result
    assert (level.backend, level.model_version) == ("student", first), "finished on the model it started with"
    assert level.level is not None

    after = _play(gen, 2, 600)  # requests made after the swap follow the new routing
    assert {g.backend for g in after} == {"procedural"}
    router.drain(30)
    assert any(c.record.model_version == second and not c.record.served for c in store.iter_calls(LEVEL_SITE))
    assert not students[second].closed


def test_failures_while_shadowing_are_not_held_against_the_version_once_it_serves(setup):
    gen, router, registry, store, students, tmp = setup
    gen.start_session("s1")
    _play(gen, 8)  # the teacher's baseline
    version = _promote(registry, tmp)
    gen.start_session("s2")
    student = students[version]
    student.mode = "bad"
    _play(gen, 5, 100)  # a rough start in shadow ...
    router.drain(30)
    student.mode = "good"
    _play(gen, 25, 200)  # ... then enough good answers to earn serving (Wilson bound 25/30)
    router.drain(30)
    gen.start_session("s3")
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL
    assert {g.backend for g in _play(gen, 6, 300)} == {"student"}
    gen.start_session("s4")  # six valid served levels: no regression to roll back for
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL, store.site_events(LEVEL_SITE)[-1]


def test_a_crashing_or_garbage_student_still_gives_the_game_a_valid_level_and_rolls_back(setup):
    gen, router, registry, store, students, tmp = setup
    gen.start_session("s1")
    _play(gen, 8)  # the teacher's baseline
    version = _promote(registry, tmp)
    gen.start_session("s2")
    _play(gen, 8, 100)
    router.drain(30)
    gen.start_session("s3")
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL

    students[version].mode = "crash"
    crashed = _play(gen, 3, 200)
    assert all(g.backend == "procedural" for g in crashed), "the cascade answers when the student dies"
    students[version].mode = "bad"
    bad = _play(gen, 6, 300)
    assert all(g.backend == "procedural" for g in bad)

    decisions = gen.start_session("s4") or router.refresh([LEVEL_SITE])
    status = router.status(LEVEL_SITE)
    assert status.state is RouteState.ROLLED_BACK and version in status.rejected
    assert registry.current(LEVEL_SITE) is None, "the registry pointer follows the rollback"
    ev = [e for e in store.site_events(LEVEL_SITE) if "->rolled_back" in getattr(e, "kind", "")]
    assert ev and "live validity" in str(ev[-1])
    assert students[version].closed, "a rolled-back student's worker is closed, not kept until exit"
    assert {g.backend for g in _play(gen, 3, 400)} == {"procedural"}


def test_spot_checks_send_a_share_of_local_requests_to_the_teacher(setup):
    gen, router, registry, store, students, tmp = setup
    router.policy = RoutingPolicy(min_shadow_samples=4, promote_lower_bound=0.5, spot_check_rate=1.0)
    gen.start_session("s1")
    _promote(registry, tmp)
    gen.start_session("s2")
    _play(gen, 5)
    router.drain(30)
    gen.start_session("s3")
    _play(gen, 3, 50)
    router.drain(30)  # spot checks run in the background, after the level is served
    spot = [c.record for c in store.iter_calls(LEVEL_SITE) if (c.record.args or {}).get("spot_check")]
    assert len(spot) == 3 and all(r.backend == "procedural" and not r.served and r.valid for r in spot)


def test_routing_policy_comes_from_forge_toml(tmp_path):
    (tmp_path / "forge.toml").write_text("[routing]\nmin_shadow_samples = 3\npromote_lower_bound = 0.5\n")
    gen = LevelGenerator(data_dir=tmp_path, router="auto")
    try:
        assert gen.router.policy.min_shadow_samples == 3 and gen.router.policy.promote_lower_bound == 0.5
    finally:
        gen.close()
    (tmp_path / "forge.toml").write_text("[routing]\nmin_shadow_sample = 3\n")
    with pytest.raises(ConfigError, match=r"forge\.toml: Object contains unknown field `min_shadow_sample` - at `\$\.routing`"):
        LevelGenerator(data_dir=tmp_path, router="auto")


def test_a_student_serves_only_the_sizes_it_was_trained_on_and_the_teacher_takes_the_rest(setup):
    # The version's manifest says it saw 16-24 x 12-16; the game asks for 40x24 too. The student is
    # neither shadowed nor served there, and its declining is not counted against it.
    gen, router, registry, store, students, tmp = setup
    src = tmp / "art"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"stand-in weights")
    ranges = {"width": [16, 24], "height": [12, 16], "enemies": [0, 6], "items": [0, 4]}
    version = registry.add_version(LEVEL_SITE, src, {"base": "micro", "state": "passed",
                                                     "metrics": {"spec_ranges": ranges}})
    registry.promote(LEVEL_SITE, version)
    big = LevelSpec(width=40, height=24, difficulty=3, enemies=4, items=3, theme="crypt")

    gen.start_session("s1")
    assert [gen.generate(big, seed=i).backend for i in range(3)] == ["procedural"] * 3
    _play(gen, 6, 100)
    router.drain(30)
    shadowed = [c.record for c in store.iter_calls(LEVEL_SITE) if c.record.backend == "student"]
    assert len(shadowed) == 6 and all(r.args["spec"]["width"] == 24 for r in shadowed), "shadowed inside only"

    gen.start_session("s2")
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL
    assert {gen.generate(SPEC, seed=300 + i).backend for i in range(3)} == {"student"}
    served_big = [gen.generate(big, seed=400 + i) for i in range(6)]
    assert {g.backend for g in served_big} == {"procedural"} and all(g.level.width == 40 for g in served_big)
    declined = [c.record for c in store.iter_calls(LEVEL_SITE)
                if c.record.backend == "student" and (c.record.error or "").startswith("declined")]
    assert len(declined) == 6 and all(r.valid is None for r in declined)
    assert "width 40 is outside the 16-24" in declined[0].error
    gen.start_session("s3")  # six declines are no regression: the student keeps its site
    assert router.status(LEVEL_SITE).state is RouteState.LOCAL
