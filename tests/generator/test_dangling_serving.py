"""SERVING.json naming a version that is not on disk (issue 15, item 8).

`python -m generator.models list` used to exit 1 and list nothing, and the
game kept serving whatever the store's routing state said, silently.  Now the
list shows what exists and flags the pointer; routing falls back to the
previous valid version, or the teacher, and records an event saying so.
"""

from __future__ import annotations

import json
import shutil

import pytest

from generator import models
from generator.backends import BackendOutput
from generator.backends.procedural import generate_procedural
from generator.store.callsite import LEVEL_SITE
from generator.facade import LevelGenerator
from generator.local.registry import SERVING_NAME, Registry
from generator.routing import Router, RoutingPolicy, RouteState
from generator.store import Store


class StandIn:
    name = "student"

    def __init__(self, version):
        self.model_version = version

    def generate(self, request):
        level = generate_procedural(request.spec, request.seed + 7)
        return BackendOutput(raw=level.to_json(), model="stand-in", model_version=self.model_version,
                             confidence=-0.1, level=level)


def add(registry: Registry, tmp_path, tag: str) -> str:
    src = tmp_path / f"src-{tag}"
    src.mkdir()
    (src / "model.safetensors").write_bytes(tag.encode())
    return registry.add_version(LEVEL_SITE, src, {"base": "micro", "state": "passed"})


def point_at(registry: Registry, version: str, history: list[str]) -> None:
    path = registry.site_dir(LEVEL_SITE) / SERVING_NAME
    doc = json.loads(path.read_text()) if path.exists() else {"site": LEVEL_SITE}
    doc.update(current=version, history=history)
    path.write_text(json.dumps(doc))


@pytest.fixture
def registry(_forge_home):
    return Registry(_forge_home / "models")


def test_models_list_shows_what_exists_and_flags_the_dangling_pointer(registry, tmp_path, capsys):
    v1, v2 = add(registry, tmp_path, "a"), add(registry, tmp_path, "b")
    registry.promote(LEVEL_SITE, v1)
    registry.promote(LEVEL_SITE, v2)
    shutil.rmtree(registry.site_dir(LEVEL_SITE) / v2)  # the served version's folder is gone
    assert models.main(["list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["sites"]
    assert [m["version"] for m in entry["versions"]] == [v1]
    assert entry["serving"] == {"pointer": v2, "dangling": True, "fallback": v1}
    assert entry["current"] == v1
    assert models.main(["list"]) == 0
    out = capsys.readouterr().out
    assert v1 in out and f"SERVING.json names {v2}" in out and "missing" in out


def test_a_pointer_at_a_version_that_never_existed_with_no_fallback(registry, tmp_path, capsys):
    add(registry, tmp_path, "a")
    point_at(registry, "v0042", [])
    assert registry.current(LEVEL_SITE) is None
    assert models.main(["list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["sites"]
    assert entry["serving"] == {"pointer": "v0042", "dangling": True, "fallback": None}
    assert entry["current"] is None and len(entry["versions"]) == 1


def test_routing_falls_back_to_the_previous_valid_version_and_records_it(registry, tmp_path, _forge_home):
    v1, v2 = add(registry, tmp_path, "a"), add(registry, tmp_path, "b")
    registry.promote(LEVEL_SITE, v1)
    registry.promote(LEVEL_SITE, v2)
    with Store.open(_forge_home / "forge.db") as store:
        store.set_site_state(LEVEL_SITE, RouteState.LOCAL.value, v2, {})
        router = Router(store, registry, policy=RoutingPolicy(spot_check_rate=0.0),
                        student_factory=lambda site, d, v: StandIn(v))
        shutil.rmtree(registry.site_dir(LEVEL_SITE) / v2)
        gen = LevelGenerator(store=store, router=router, data_dir=_forge_home)
        gen.start_session("after-the-folder-vanished")
        status = router.status(LEVEL_SITE)
        assert status.version == v1 and status.state in (RouteState.SHADOW, RouteState.LOCAL)
        events = [e for e in store.site_events(LEVEL_SITE) if "dangling" in e.kind]
        assert len(events) == 1 and events[0].evidence["pointer"] == v2 and events[0].evidence["fallback"] == v1
        got = gen.generate(__import__("engine.core.level", fromlist=["LevelSpec"]).LevelSpec(
            width=20, height=14, difficulty=2, enemies=1, items=1, theme="cave"), seed=3)
        assert got.level is not None
        gen.start_session("again")  # the same dangling pointer is recorded once, not every session
        assert len([e for e in store.site_events(LEVEL_SITE) if "dangling" in e.kind]) == 1
        router.close()


def test_routing_falls_back_to_the_teacher_when_no_version_is_valid(registry, tmp_path, _forge_home):
    v1 = add(registry, tmp_path, "a")
    add(registry, tmp_path, "b")  # a newer version exists but was never promoted
    registry.promote(LEVEL_SITE, v1)
    with Store.open(_forge_home / "forge.db") as store:
        store.set_site_state(LEVEL_SITE, RouteState.LOCAL.value, v1, {})
        router = Router(store, registry, student_factory=lambda site, d, v: StandIn(v))
        shutil.rmtree(registry.site_dir(LEVEL_SITE) / v1)
        router.refresh()
        assert router.status(LEVEL_SITE).state is RouteState.TEACHER
        (event,) = [e for e in store.site_events(LEVEL_SITE) if "dangling" in e.kind]
        assert event.evidence["fallback"] is None and event.evidence["pointer"] == v1
        router.close()
