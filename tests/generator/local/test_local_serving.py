"""Which runtime serves a promoted level student: the GGUF worker when it can, torch otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("gguf")

from engine.core.level import LevelSpec  # noqa: E402
from generator.backends import BackendRequest  # noqa: E402
from generator.errors import ConfigError, ModelLoadError  # noqa: E402
from generator.backends import student as serving  # noqa: E402
from generator.local.gguf_worker import GGUFBackend, runtime_available  # noqa: E402
from generator.local.student import StudentBackend  # noqa: E402

needs_runtime = pytest.mark.skipif(not runtime_available(), reason="ctransformers is not installed (optional extra gguf)")


@pytest.fixture(scope="module")
def version_dir(tiny_student_dir, tmp_path_factory):
    """A promoted-version folder as the trainer leaves it: weights, tokenizer and the q8_0 GGUF."""
    import shutil

    from generator.local.gguf import export_gguf

    out = tmp_path_factory.mktemp("serving") / "v0001"
    shutil.copytree(tiny_student_dir, out)
    export_gguf(out, out / serving.GGUF_ARTEFACT, "q8_0")
    return out


def test_torch_runtime_serves_in_process(version_dir):
    backend = serving.student_backend(version_dir, version="v0001", runtime="torch")
    assert isinstance(backend, StudentBackend) and backend.model_version == "v0001"


@needs_runtime
def test_auto_serves_the_gguf_file_in_a_worker_named_like_the_student(version_dir):
    backend = serving.student_backend(version_dir, version="v0007", runtime="auto", max_tries=8)
    try:
        assert isinstance(backend, GGUFBackend)
        assert backend.name == "student" and backend.model_version == "v0007"
        out = backend.generate(BackendRequest(spec=LevelSpec(width=18, height=12, difficulty=3, enemies=2, items=1,
                                                             theme="crypt"), seed=3))
        assert out.model_version == "v0007" and out.level is not None  # masked + connected: valid
        assert out.confidence is not None and out.confidence < 0
    finally:
        backend.close()


def test_auto_without_the_gguf_file_falls_back_to_torch(version_dir, tmp_path):
    import shutil

    bare = tmp_path / "v0002"
    shutil.copytree(version_dir, bare, ignore=shutil.ignore_patterns("*.gguf"))
    assert isinstance(serving.student_backend(bare, runtime="auto"), StudentBackend)
    with pytest.raises(ModelLoadError, match="student-q8_0.gguf is missing"):
        serving.student_backend(bare, runtime="gguf")


def test_runtime_comes_from_the_environment_and_bad_names_are_refused(monkeypatch, version_dir):
    monkeypatch.setenv("FORGE_STUDENT_RUNTIME", "torch")
    assert isinstance(serving.student_backend(version_dir), StudentBackend)
    monkeypatch.setenv("FORGE_STUDENT_RUNTIME", "cuda")
    with pytest.raises(ConfigError, match="FORGE_STUDENT_RUNTIME"):
        serving.student_backend(version_dir)


@needs_runtime
def test_closing_the_router_stops_its_gguf_workers(version_dir, tmp_path):
    import shutil

    from generator.store.callsite import LEVEL_SITE
    from generator.local.registry import Registry
    from generator.routing import Router
    from generator.store import Store

    data = tmp_path / "data"
    models = data / "models"
    registry = Registry(models)
    src = tmp_path / "artefact"
    shutil.copytree(version_dir, src)
    version = registry.add_version(LEVEL_SITE, src, {"base": "micro", "preset": "micro-1m", "state": "passed"})
    registry.promote(LEVEL_SITE, version)
    store = Store.open(data / "forge.db")
    router = Router(store, registry)
    backend = router.student(LEVEL_SITE, version)
    assert isinstance(backend, GGUFBackend)
    proc = backend.worker._proc
    assert proc.poll() is None  # the worker is running
    router.close()
    proc.wait(timeout=10)
    assert proc.poll() is not None
    store.close()
