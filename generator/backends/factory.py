"""Build a backend from its config name (``generator.facade`` re-exports :func:`make_backend`).

Kept out of ``generator/backends/__init__.py`` so that importing the protocol
(``generator.backends.base``) never reaches the teacher, the capture plugin or
routing: the import graph stays free of cycles (``tests/test_layers.py``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from generator.backends.base import Backend
from generator.backends.procedural import ProceduralBackend
from generator.store.callsite import LEVEL_SITE
from generator.errors import ConfigError

if TYPE_CHECKING:
    from generator.settings import GeneratorConfig

__all__ = ["make_backend"]


def make_backend(
    name: str, config: GeneratorConfig | None = None, *, data_dir: str | os.PathLike[str] | None = None,
    site: str = LEVEL_SITE,
) -> Backend:
    """Build a backend from its config name: ``procedural``, ``llm``, ``student`` or ``remote_student``.

    ``llm`` needs jaclang/byllm (:mod:`generator.backends.teacher`); ``student`` needs a
    promoted model for ``site`` in the registry and the ``[train]`` extra.
    Raises :class:`ConfigError` saying what is missing.
    """
    from generator.settings import GeneratorConfig

    config = config or GeneratorConfig()
    if name == "procedural":
        return ProceduralBackend()
    if name == "llm":
        try:
            from generator.backends.teacher import LLMTeacherBackend
        except ImportError as exc:
            raise ConfigError(
                f"the llm backend needs generator.backends.teacher and jaclang/byllm ({exc}); "
                "pip install dungeon-forge, or use --backend procedural"
            ) from None
        from generator.settings import teacher_settings

        settings = teacher_settings(data_dir)
        if not settings.usable():
            raise ConfigError(
                f"the llm backend has no key for teacher {settings.model} ({settings.key_env() or 'its key'} "
                "is unset) and no OPENAI_BASE_URL; set one, or use --backend procedural"
            )
        return LLMTeacherBackend(settings)
    if name == "student":
        from generator.local.registry import Registry

        registry = Registry.in_data_dir(data_dir)
        current = registry.current(site)
        if current is None:
            raise ConfigError(
                f"no student model is promoted for {site} in {registry.root}; train one with "
                "`python -m generator.train` or use --backend procedural"
            )
        model_dir = registry.model_dir(site, current.version)
        from generator.backends.student import student_backend

        try:
            return student_backend(model_dir, version=current.version)
        except ImportError as exc:
            raise ConfigError(
                f"the student backend needs torch or a GGUF runtime ({exc}); pip install 'dungeon-forge[train]'"
            ) from None
    if name == "remote_student":  # a student behind `python -m generator.serve` ([student_server] in forge.toml)
        from generator.backends.remote import RemoteStudentBackend

        return RemoteStudentBackend.from_config(data_dir, site=site)
    raise ConfigError(f"unknown backend {name!r}; choose one of llm, student, remote_student, procedural")
