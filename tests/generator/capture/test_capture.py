"""The capture plugin records every by llm() call without changing what the program sees."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import jac_support as support  # noqa: E402  (tests are imported from the project root)

from generator import capture  # noqa: E402
from generator.store.callsite import LEVEL_SITE, SPEC_SITE  # noqa: E402
from generator.store.records import CURRENT_SLOT, CaptureSlot  # noqa: E402


@pytest.fixture(scope="module")
def levels():
    assert capture.install(), "the capture plugin must be registered through its entry point"
    import jac.levels as levels

    return levels


@pytest.fixture
def records(levels):
    seen: list = []
    previous = capture.set_record_sink(seen.append)
    model = levels.llm
    yield seen
    levels.llm = model
    capture.set_record_sink(previous)
    capture.set_local_server(None)


def _spec(levels, **changes):
    return levels.Spec(**{**support.SMALL_SPEC, **changes})


def test_plugin_loads_from_its_entry_point_without_warnings():
    proc = subprocess.run(
        [sys.executable, "-c", "import jaclang"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "dungeon_forge_capture" not in proc.stderr
    assert "failed to load" not in proc.stderr


@pytest.mark.parametrize("first", ["import jaclang", "import generator.capture; import jaclang"])
def test_capture_wraps_byllm_whatever_is_imported_first(first):
    code = (
        f"{first}\nfrom jaclang.jac0core.runtime import plugin_manager\n"
        "print([h.plugin_name for h in plugin_manager.hook.call_llm.get_hookimpls()])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().endswith("'byllm', 'dungeon_forge_capture']")


def test_capture_hook_runs_before_byllm(levels):
    from jaclang.jac0core.runtime import plugin_manager

    names = [h.plugin_name for h in plugin_manager.hook.call_llm.get_hookimpls()]
    assert names[-1] == "dungeon_forge_capture"
    assert "byllm" in names


def test_design_level_call_is_recorded_with_everything(levels, records):
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    result = levels.design_level(_spec(levels), "V2.open_border at (0, 3)")

    assert isinstance(result, levels.LevelDesign) and result.name == "Test Vault"
    (rec,) = records
    assert rec.site == LEVEL_SITE  # the constant others import is what the plugin computes
    assert rec.backend == "mock" and rec.model == "mockllm"
    assert rec.args == {"spec": support.SMALL_SPEC, "feedback": "V2.open_border at (0, 3)"}
    assert rec.result == support.SMALL_LEVEL
    assert json.loads(rec.raw_output) == support.SMALL_LEVEL
    assert rec.output_schema["json_schema"]["name"] == "LevelDesign"
    assert any("V2.open_border" in json.dumps(m) for m in rec.messages)  # the feedback reached the prompt
    assert rec.error is None and rec.served and rec.latency_ms > 0
    assert rec.valid is not None


def test_spec_site_constant_matches_the_plugin(levels, records):
    levels.llm = support.mock_llm(_spec(levels, difficulty=3))
    summary = levels.PlayerSummary(
        levels_played=3, levels_completed=3, deaths=0, mean_turns=80.0, mean_fun=0.7, mean_health_left=0.8, notes=""
    )
    nxt = levels.choose_next_spec(summary, _spec(levels))
    assert nxt.difficulty == 3
    (rec,) = records
    assert rec.site == SPEC_SITE
    assert rec.valid is True and rec.result["difficulty"] == 3


def test_out_of_range_spec_is_judged_invalid(levels, records):
    levels.llm = support.mock_llm(_spec(levels, width=500))
    summary = levels.PlayerSummary(
        levels_played=1, levels_completed=0, deaths=1, mean_turns=5.0, mean_fun=0.1, mean_health_left=0.0, notes=""
    )
    levels.choose_next_spec(summary, _spec(levels))
    (rec,) = records
    assert rec.valid is False and rec.failures[0]["code"] == "V0.spec"


def test_program_sees_the_models_exception_unchanged(levels, records):
    from byllm.lib import MockError

    boom = ValueError("provider exploded")
    levels.llm = support.mock_llm(MockError(error=boom))
    with pytest.raises(ValueError) as caught:
        levels.design_level(_spec(levels), "")
    assert caught.value is boom
    (rec,) = records
    assert rec.error == "ValueError: provider exploded"
    assert rec.result is None and rec.valid is None and not rec.served


def test_unparsable_output_is_recorded_invalid(levels, records):
    from byllm.lib import OutputConversionError

    levels.llm = support.mock_llm(*[support.raw("{not json")] * 4)
    with pytest.raises(OutputConversionError):
        levels.design_level(_spec(levels), "")
    (rec,) = records
    assert rec.valid is False and rec.failures[0]["code"] == "V0.unparsable"
    assert rec.raw_output == "{not json"


def test_capture_failure_never_reaches_the_program(levels, records, monkeypatch, caplog):
    def broken_sink(rec):
        raise RuntimeError("disk full")

    capture.set_record_sink(broken_sink)
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    with caplog.at_level(logging.WARNING, logger="generator.capture"):
        result = levels.design_level(_spec(levels), "")
    assert result.name == "Test Vault"
    assert "record sink failed" in caplog.text

    monkeypatch.setattr(capture.call, "_record", lambda *a, **k: 1 / 0)
    levels.llm = support.mock_llm(support.raw(support.level_json(name="Second")))
    assert levels.design_level(_spec(levels), "").name == "Second"


def test_slot_gets_the_call_instead_of_the_store(levels, records):
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    slot = CaptureSlot()
    token = CURRENT_SLOT.set(slot)
    try:
        levels.design_level(_spec(levels), "")
    finally:
        CURRENT_SLOT.reset(token)
    assert records == []
    assert slot.calls == 1 and slot.site == LEVEL_SITE and slot.model == "mockllm"
    assert json.loads(slot.raw_output)["name"] == "Test Vault"
    assert slot.messages and slot.output_schema


def test_observe_sees_calls_wherever_they_go(levels, records):
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    with capture.observe() as seen:
        levels.design_level(_spec(levels), "")
    assert len(seen) == 1 and seen[0] is records[0]


def test_local_server_answers_a_site_without_calling_the_model(levels, records):
    asked = []

    def student(site, args):
        asked.append((site, args))
        return support.SMALL_LEVEL if site == LEVEL_SITE else None

    capture.set_local_server(student)
    model = support.mock_llm()  # no outputs: calling it would fail
    levels.llm = model
    result = levels.design_level(_spec(levels), "")
    assert isinstance(result, levels.LevelDesign) and result.exit.x == 14
    assert asked == [(LEVEL_SITE, {"spec": support.SMALL_SPEC, "feedback": ""})]
    assert model.seen_prompts == []
    (rec,) = records
    assert rec.backend == "student" and rec.result == support.SMALL_LEVEL


@pytest.mark.parametrize("answer", ["decline", "raise", "misfit"])
def test_local_server_that_cannot_answer_falls_back_to_the_model(levels, records, answer):
    def student(site, args):
        if answer == "raise":
            raise RuntimeError("worker crashed")
        return None if answer == "decline" else {"rows": "not a level"}

    capture.set_local_server(student)
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    assert levels.design_level(_spec(levels), "").name == "Test Vault"
    assert [r.backend for r in records] == ["mock"]


def test_teacher_only_skips_the_local_server(levels, records):
    capture.set_local_server(lambda site, args: support.SMALL_LEVEL)
    levels.llm = support.mock_llm(support.raw(support.level_json(name="From teacher")))
    with capture.teacher_only():
        assert levels.design_level(_spec(levels), "").name == "From teacher"


def test_records_go_to_the_pending_file_until_the_store_can_open(levels, monkeypatch, _forge_home):
    capture.set_record_sink(None)
    sink = capture.sink.StoreSink()
    monkeypatch.setattr(capture.sink, "_default_sink", sink)
    monkeypatch.setitem(sys.modules, "generator.store", None)  # as if the store package were missing
    levels.llm = support.mock_llm(support.raw(support.level_json()))
    levels.design_level(_spec(levels), "")
    pending = _forge_home / "runs" / capture.PENDING_FILE
    assert pending.exists()

    class FakeStore:
        def __init__(self):
            self.calls = []

        def record_call(self, rec):
            self.calls.append(rec)

    fake = FakeStore()
    fake_module = type(sys)("generator.store")
    fake_module.Store = type("Store", (), {"open": staticmethod(lambda path: fake)})
    monkeypatch.setitem(sys.modules, "generator.store", fake_module)
    sink._close_current()
    levels.llm = support.mock_llm(support.raw(support.level_json(name="Later")))
    levels.design_level(_spec(levels), "")
    assert [r.result["name"] for r in fake.calls] == ["Test Vault", "Later"]
    assert not pending.exists()


def test_foreign_program_in_process_is_captured_per_site(records):
    recipes = support.import_recipes()
    recipe = {"title": "Egg rice", "ingredients": [{"name": "egg", "grams": 60}], "steps": ["fry"], "minutes": 10}
    recipes.llm = support.mock_llm(support.raw(json.dumps(recipe)), "steam rises\nover rice\nquiet")
    r = recipes.invent_recipe(["egg", "rice"], "japanese")
    poem = recipes.haiku_for(r.title)
    assert r.minutes == 10 and poem.startswith("steam")
    sites = [rec.site for rec in records]
    assert sites[0].startswith("recipes:invent_recipe#") and sites[1].startswith("recipes:haiku_for#")
    assert records[0].valid is True and records[1].valid is True
    assert records[0].args == {"pantry": ["egg", "rice"], "cuisine": "japanese"}


def test_local_server_answers_a_foreign_site(records):
    recipes = support.import_recipes()
    capture.set_local_server(lambda site, args: "local haiku" if site.startswith("recipes:haiku_for#") else None)
    recipes.llm = support.mock_llm()
    assert recipes.haiku_for("tea") == "local haiku"
    assert records[0].backend == "student"


def test_async_by_llm_is_captured_and_servable(records):
    import asyncio

    support.import_recipes()  # puts the jacprog folder on sys.path
    import notes_async  # type: ignore[import-not-found]

    notes_async.llm = support.mock_llm(support.raw(json.dumps({"label": "bills", "urgent": True})))
    note = asyncio.run(notes_async.label_note("pay the rent"))
    assert note.label == "bills"
    assert records[0].site.startswith("notes_async:label_note#") and records[0].valid is True

    capture.set_local_server(lambda site, args: {"label": "local", "urgent": False})
    assert asyncio.run(notes_async.label_note("water plants")).label == "local"
    assert records[-1].backend == "student"


def test_level_site_is_judged_by_the_gates(levels, records):
    validation = pytest.importorskip("generator.validation")
    if not hasattr(validation, "validate_level"):
        pytest.skip("generator.validation.validate_level is not built yet")
    rows = list(support.SMALL_LEVEL["rows"])
    rows[3] = "." + rows[3][1:]  # a hole in the west wall: V2
    levels.llm = support.mock_llm(support.raw(support.level_json(rows=rows)))
    levels.design_level(_spec(levels), "")
    (rec,) = records
    assert rec.valid is False
    assert any(f["gate"] == "V2" for f in rec.failures)


def test_streamed_call_passes_through_and_is_recorded_without_result(records):
    support.import_recipes()
    import notes_async  # type: ignore[import-not-found]

    notes_async.llm = support.mock_llm("hello there friend")
    assert "".join(notes_async.read_aloud("hi")) == "hello there friend"
    (rec,) = records
    assert rec.site.startswith("notes_async:read_aloud#") and rec.result is None and rec.error is None


def test_local_answer_carries_confidence_and_version_into_the_record(levels, records):
    answer = capture.LocalAnswer(
        result=support.SMALL_LEVEL, raw="compact text", confidence=-0.4, model="micro-student", model_version="v3"
    )
    capture.set_local_server(lambda site, args: answer)
    levels.llm = support.mock_llm()
    assert levels.design_level(_spec(levels), "").name == "Test Vault"
    (rec,) = records
    assert (rec.backend, rec.model, rec.model_version, rec.confidence) == ("student", "micro-student", "v3", -0.4)
    assert rec.raw_output == "compact text" and rec.valid is True


def test_router_serves_a_promoted_foreign_site_locally_and_only_when_local(records, tmp_path):
    from generator.local.registry import Registry
    from generator.routing import Router, install_local_server
    from generator.store import Store

    recipes = support.import_recipes()
    recipes.llm = support.mock_llm("teacher haiku one", "teacher haiku two")
    recipes.haiku_for("warm-up")  # the teacher answers; the capture records the site id
    site = next(r.site for r in records if r.site.startswith("recipes:haiku_for#"))

    store = Store.open(tmp_path / "forge.db")
    registry = Registry(tmp_path / "models")
    art = tmp_path / "art"
    art.mkdir()
    (art / "model.safetensors").write_bytes(b"stand-in")
    version = registry.add_version(site, art, {"base": "micro", "state": "passed"})
    registry.promote(site, version)
    router = Router(store, registry)
    install_local_server(router, factory=lambda s, d, v: (lambda args: f"local haiku about {args['dish']}"))
    try:
        router.refresh([site])  # promoted -> shadow: the teacher still answers
        assert recipes.haiku_for("tea") == "teacher haiku two"
        assert capture.drain_shadows(30) == 0
        shadow = records[-1]  # ... and the student answered the same call in the background, unserved
        assert (shadow.backend, shadow.served, shadow.valid, shadow.model_version) == ("student", False, True, version)
        assert shadow.result == "local haiku about tea" and shadow.args == {"dish": "tea"}
        store.set_site_state(site, "local", version, {"reason": "test"})
        assert recipes.haiku_for("miso") == "local haiku about miso"
        assert records[-1].backend == "student" and records[-1].site == site
        assert records[-1].served and records[-1].model_version == version
    finally:
        capture.drain_shadows(30)
        capture.set_local_server(None)
        store.close()
