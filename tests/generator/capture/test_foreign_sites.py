"""A foreign Jac program's call site moves teacher -> shadow -> local through the capture plugin alone.

No facade, no hand-set routing state: each "program run" is a new routing
session (``capture.end_session()`` stands for the process exiting), the
registry promotion is the only manual step, and the shadow evidence comes from
real ``by llm()`` calls of ``tests/generator/jacprog/recipes.jac``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import jac_support as support  # noqa: E402  (tests are imported from the project root)

from generator import capture, routing  # noqa: E402

RECIPE = {"title": "Egg rice", "ingredients": [{"name": "egg", "grams": 60}], "steps": ["fry"], "minutes": 10}


class FakeStudents:
    """A student factory for ``routing.foreign._default_local_factory``: records loads, answers with ``answer``."""

    def __init__(self, answer: Any, *, load_error: Exception | None = None) -> None:
        self.answer = answer
        self.load_error = load_error
        self.loads: list[tuple[str, str]] = []
        self.asked: list[dict[str, Any]] = []

    def __call__(self, site: str, model_dir: Path, version: str) -> Any:
        self.loads.append((site, version))
        if self.load_error is not None:
            raise self.load_error

        def answer(args: dict[str, Any]) -> Any:
            self.asked.append(args)
            return self.answer(args)

        return answer


@pytest.fixture
def recipes(_forge_home):
    """The foreign program, recording into the test's data dir through the plugin's default sink."""
    assert capture.install()
    previous_sink = capture.set_record_sink(None)
    previous_server = capture.set_local_server(None)
    capture.end_session()
    module = support.import_recipes()
    model = module.llm
    yield module
    capture.drain_shadows(30)
    capture.end_session()
    capture.set_local_server(previous_server)
    capture.set_record_sink(previous_sink)
    module.llm = model


def _new_run() -> None:
    """What ending one program run and starting the next does to the routing session."""
    assert capture.drain_shadows(30) == 0
    capture.end_session()


def _policy(home: Path, **settings: Any) -> None:
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    (home / "forge.toml").write_text("[routing]\n" + lines, encoding="utf-8")


def _calls(home: Path, site: str) -> list[Any]:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        return [c.record for c in store.iter_calls(site)]


def _site(home: Path, prefix: str) -> str:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        (site,) = {c.record.site for c in store.iter_calls() if c.record.site.startswith(prefix)}
    return site


def _state(home: Path, site: str) -> tuple[str, str | None] | None:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        row = store.get_site_state(site)
        return None if row is None else (row.state, row.version)


def _set_state(home: Path, site: str, state: str, version: str) -> None:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        store.set_site_state(site, state, version, {"reason": "test"})


def _events(home: Path, site: str) -> list[str]:
    from generator.store import Store

    with Store.open(home / "forge.db") as store:
        return [e.kind for e in store.site_events(site)]


def _promote(home: Path, site: str, model_dir: Path | None = None) -> str:
    from generator.local.registry import Registry

    if model_dir is None:
        model_dir = home / "stand-in-model"
        model_dir.mkdir(exist_ok=True)
        (model_dir / "model.safetensors").write_bytes(b"stand-in")
    registry = Registry(home / "models")
    version = registry.add_version(site, model_dir, {"base": "micro", "state": "passed"})
    registry.promote(site, version)
    return version


def _first_haiku_run(recipes: Any, home: Path) -> str:
    """Run 1, before any model exists: the teacher answers and the call site is captured."""
    recipes.llm = support.mock_llm("teacher haiku")
    assert recipes.haiku_for("warm-up") == "teacher haiku"
    return _site(home, "recipes:haiku_for#")


def test_a_promoted_foreign_site_is_shadowed_then_served_locally_at_a_later_run(recipes, _forge_home, monkeypatch):
    _policy(_forge_home, min_shadow_samples=5, promote_lower_bound=0.5)
    students = FakeStudents(lambda args: f"a haiku about {args['dish']}")  # the teacher's answers, learnt
    monkeypatch.setattr(routing.foreign, "_default_local_factory", students)
    site = _first_haiku_run(recipes, _forge_home)
    assert _state(_forge_home, site) is None and students.loads == []
    version = _promote(_forge_home, site)

    # Run 2: the promotion is picked up at the session start; the model still answers every call.
    _new_run()
    dishes = ["tea", "miso", "plum", "pear", "soba"]
    recipes.llm = support.mock_llm(*[f"A haiku about {d}." for d in dishes])
    for dish in dishes:
        assert recipes.haiku_for(dish) == f"A haiku about {dish}."
    assert _state(_forge_home, site) == ("shadow", version)
    _new_run()  # the queued shadow answers are finished when the run ends
    shadows = [r for r in _calls(_forge_home, site) if r.backend == "student"]
    assert [r.args for r in shadows] == [{"dish": d} for d in dishes]
    assert all(not r.served and r.valid is True and r.model_version == version for r in shadows)
    assert shadows[0].result == "a haiku about tea"
    teacher_ids = {r.call_id for r in _calls(_forge_home, site) if r.backend == "mock"}
    assert all(r.request_id in teacher_ids for r in shadows)  # each paired with the model's answer

    # Run 3: five shadow answers that agree with the model's clear the policy: the student answers,
    # the model is not called.
    model = support.mock_llm()  # no outputs: calling it would fail
    recipes.llm = model
    assert recipes.haiku_for("udon") == "a haiku about udon"
    assert model.seen_prompts == []
    assert _state(_forge_home, site) == ("local", version)
    assert _events(_forge_home, site) == ["teacher->shadow", "shadow->local"]
    served = _calls(_forge_home, site)[-1]
    assert (served.backend, served.served, served.valid, served.model_version) == ("student", True, True, version)
    assert students.loads == [(site, version)] * 2  # loaded once per session


def test_a_local_student_that_stops_answering_is_rolled_back_at_the_next_run(recipes, _forge_home, monkeypatch):
    _policy(_forge_home, min_shadow_samples=3, promote_lower_bound=0.4, rollback_min_samples=4)
    mode = {"answer": True}

    def student(args: dict[str, Any]) -> Any:
        if mode["answer"]:
            return f"haiku {args['dish'][-1]}"
        if args["dish"].endswith(("1", "3")):
            raise RuntimeError("worker process died")
        return None

    students = FakeStudents(student)
    monkeypatch.setattr(routing.foreign, "_default_local_factory", students)
    recipes.llm = support.mock_llm(*[f"haiku {i}" for i in range(4)])
    for i in range(4):  # the teacher's served answers: the baseline a student is compared with
        recipes.haiku_for(f"dish {i}")
    site = _site(_forge_home, "recipes:haiku_for#")
    version = _promote(_forge_home, site)

    _new_run()  # shadow
    recipes.llm = support.mock_llm(*[f"haiku {i}" for i in range(3)])
    for i in range(3):
        recipes.haiku_for(f"shadowed {i}")

    _new_run()  # local; then the student stops giving usable answers (nothing, or a crash)
    mode["answer"] = False
    recipes.llm = support.mock_llm(*[f"rescued {i}" for i in range(4)])
    assert [recipes.haiku_for(f"late {i}") for i in range(4)] == [f"rescued {i}" for i in range(4)]
    assert _state(_forge_home, site) == ("local", version)
    failed = [r for r in _calls(_forge_home, site) if r.backend == "student" and r.args["dish"].startswith("late")]
    assert len(failed) == 4 and all(r.valid is False and not r.served and r.model_version == version for r in failed)
    assert failed[0].failures[0]["code"] == "V0.no_answer"

    _new_run()  # the live evidence rolls the site back; the model answers again and the student is not asked
    asked = len(students.asked)
    recipes.llm = support.mock_llm("the model is back")
    assert recipes.haiku_for("after") == "the model is back"
    assert len(students.asked) == asked
    assert _state(_forge_home, site) == ("rolled_back", None)
    assert _events(_forge_home, site) == ["teacher->shadow", "shadow->local", "local->rolled_back"]
    from generator.local.registry import Registry

    assert Registry(_forge_home / "models").current(site) is None  # the registry pointer follows


def test_shadow_answers_are_judged_like_the_models_and_bad_ones_keep_the_site_in_shadow(
    recipes, _forge_home, monkeypatch
):
    _policy(_forge_home, min_shadow_samples=4, promote_lower_bound=0.5)
    answers = iter([None, RuntimeError("student crashed"), {"title": "no ingredients"}, RECIPE])

    def student(args: dict[str, Any]) -> Any:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(routing.foreign, "_default_local_factory", FakeStudents(student))
    recipes.llm = support.mock_llm(support.raw(json.dumps(RECIPE)))
    recipes.invent_recipe(["egg"], "any")
    site = _site(_forge_home, "recipes:invent_recipe#")
    version = _promote(_forge_home, site)

    _new_run()
    recipes.llm = support.mock_llm(*[support.raw(json.dumps({**RECIPE, "minutes": m})) for m in range(4)])
    for m in range(4):
        assert recipes.invent_recipe(["egg", "rice"], "japanese").minutes == m  # the program sees the model
        capture.drain_shadows(30)
    shadows = [r for r in _calls(_forge_home, site) if r.backend == "student"]
    assert [r.valid for r in shadows] == [False, False, False, True]
    assert shadows[0].failures[0]["code"] == "V0.no_answer"
    assert "student crashed" in shadows[1].error
    assert shadows[2].failures[0]["code"] == "V0.unparsable"  # does not fit Recipe, as a model answer would not
    assert all(not r.served and r.model_version == version for r in shadows)

    _new_run()
    recipes.llm = support.mock_llm(support.raw(json.dumps(RECIPE)))
    recipes.invent_recipe(["egg"], "any")
    assert _state(_forge_home, site) == ("shadow", version)  # 1 of 4 valid: keep shadowing


def test_a_student_that_cannot_load_never_breaks_the_program(recipes, _forge_home, monkeypatch):
    from generator.errors import ModelLoadError

    students = FakeStudents(None, load_error=ModelLoadError("model.safetensors is damaged"))
    monkeypatch.setattr(routing.foreign, "_default_local_factory", students)
    site = _first_haiku_run(recipes, _forge_home)
    version = _promote(_forge_home, site)

    _new_run()  # shadow: the load fails in the background
    recipes.llm = support.mock_llm("first", "second")
    assert recipes.haiku_for("tea") == "first"
    assert recipes.haiku_for("miso") == "second"
    capture.drain_shadows(30)
    shadows = [r for r in _calls(_forge_home, site) if r.backend == "student"]
    # No answer at all is a skipped call, counted but never judged: not evidence against the student.
    assert len(shadows) == 2 and all(r.valid is None and r.failures[0]["code"] == "V0.skipped" for r in shadows)
    assert "could not be loaded" in shadows[0].failures[0]["message"]
    assert len(students.loads) == 1  # a broken model is tried once per session, not once per call

    _set_state(_forge_home, site, "local", version)  # as if it had passed its shadow phase
    _new_run()
    recipes.llm = support.mock_llm("from the model", "again from the model")
    assert recipes.haiku_for("plum") == "from the model"
    assert recipes.haiku_for("pear") == "again from the model"
    assert len(students.loads) == 2


def test_a_real_untrained_student_at_a_foreign_site_never_breaks_the_program(
    recipes, _forge_home, tiny_student_dir, one_torch_thread
):
    """The default factory loads the registry's model: an untrained one answers nothing usable."""
    site = _first_haiku_run(recipes, _forge_home)
    version = _promote(_forge_home, site, tiny_student_dir)

    _new_run()
    recipes.llm = support.mock_llm("shadowed haiku")
    assert recipes.haiku_for("tea") == "shadowed haiku"
    assert capture.drain_shadows(120) == 0
    (shadow,) = [r for r in _calls(_forge_home, site) if r.backend == "student"]
    assert shadow.valid is False and not shadow.served and shadow.model_version == version
    assert shadow.error is None and shadow.failures[0]["code"] == "V0.no_answer"  # it loaded and ran

    _set_state(_forge_home, site, "local", version)
    _new_run()
    recipes.llm = support.mock_llm("the model steps in")
    assert recipes.haiku_for("miso") == "the model steps in"


def test_local_serving_can_be_switched_off(recipes, _forge_home, monkeypatch):
    students = FakeStudents(lambda args: "local haiku")
    monkeypatch.setattr(routing.foreign, "_default_local_factory", students)
    site = _first_haiku_run(recipes, _forge_home)
    version = _promote(_forge_home, site)
    _set_state(_forge_home, site, "local", version)
    monkeypatch.setenv("FORGE_LOCAL_SERVING", "0")

    _new_run()
    recipes.llm = support.mock_llm("the model answers")
    assert recipes.haiku_for("tea") == "the model answers"
    assert students.loads == [] and capture.get_local_server() is None
    assert [r.backend for r in _calls(_forge_home, site)] == ["mock", "mock"]


def test_a_local_server_installed_by_the_program_is_kept(recipes, _forge_home, monkeypatch):
    monkeypatch.setattr(routing.foreign, "_default_local_factory", FakeStudents(lambda args: "router haiku"))
    site = _first_haiku_run(recipes, _forge_home)
    _set_state(_forge_home, site, "local", _promote(_forge_home, site))

    _new_run()
    capture.set_local_server(lambda s, args: "the program's own server")
    recipes.llm = support.mock_llm()
    assert recipes.haiku_for("tea") == "the program's own server"


def test_without_models_the_plugin_starts_no_router_and_imports_no_torch(_forge_home):
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(support.JACPROG)!r})\n"
        "import jaclang, recipes\n"
        "from byllm.lib import MockLLM\n"
        "recipes.llm = MockLLM(model_name='mockllm', ctx_window=128000, config={'outputs': ['a haiku']})\n"
        "print(recipes.haiku_for('tea'))\n"
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'generator.routing')}))\n"
    )
    env = {**os.environ, "FORGE_HOME": str(_forge_home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip().splitlines()
    assert out[0] == "a haiku"
    assert json.loads(out[-1]) == {"torch": False, "generator.routing": False}
    assert [r.site.split("#")[0] for r in support.read_calls(_forge_home)] == ["recipes:haiku_for"]


def _jac_run(home: Path, replies: list[str]) -> subprocess.CompletedProcess[str]:
    """``jac run recipes.jac`` against a fake OpenAI server on 127.0.0.1, recording into ``home``."""
    fake = support.load_fake("openai_server")
    jac = Path(sys.executable).with_name("jac")
    with fake.FakeOpenAIServer([fake.Reply.ok(r) for r in replies]) as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": "sk-forge-foreign-sites-test",
            "BYLLM_DEFAULT_MODEL": "gpt-4o-mini",
            "FORGE_HOME": str(home),
        }
        return subprocess.run(
            [str(jac), "run", str(support.JACPROG / "recipes.jac")], env=env, capture_output=True, text=True,
            timeout=300,
        )


def test_jac_run_starts_the_session_and_shadows_a_promoted_site(_forge_home, tiny_student_dir):
    """The plugin, loaded by ``jac run`` from its entry point, routes a foreign site with no help."""
    replies = [json.dumps(RECIPE), "egg on warm rice\nsteam\nquiet"]
    first = _jac_run(_forge_home, replies)
    assert first.returncode == 0, first.stderr[-2000:]
    site = _site(_forge_home, "recipes:haiku_for#")
    version = _promote(_forge_home, site, tiny_student_dir)

    second = _jac_run(_forge_home, replies)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "HAIKU egg on warm rice" in second.stdout  # the program still gets the model's answer
    assert _state(_forge_home, site) == ("shadow", version)
    (shadow,) = [r for r in _calls(_forge_home, site) if r.backend == "student"]
    assert not shadow.served and shadow.model_version == version and shadow.args == {"dish": "Egg rice"}
    # An untrained student: it loaded (even though the program ended first) and its answer was judged.
    assert shadow.valid is False and shadow.failures[0]["code"] != "V0.skipped"
    teacher = next(r for r in _calls(_forge_home, site) if r.call_id == shadow.request_id)
    assert teacher.backend == "llm" and teacher.served  # paired with the model's answer to the same call
