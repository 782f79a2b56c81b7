"""Which runtime serves a promoted level student: the GGUF worker or torch.

A promoted version directory holds the merged safetensors weights (torch)
and ``student-q8_0.gguf`` (written by ``generator.local.gguf``).  The GGUF
file in a worker process (:class:`~generator.local.gguf_worker.GGUFBackend`)
answers several times faster than torch int8 at these model sizes and keeps
a native crash out of the game (decision D18); it needs the optional
``gguf`` extra (ctransformers).  Torch int8 in process
(:class:`~generator.local.student.StudentBackend`) is the fallback and the
reference.

``runtime``: ``"auto"`` (GGUF when the runtime is installed and the file is
there, else torch), ``"gguf"`` (GGUF or a :class:`ModelLoadError`), or
``"torch"``.  The environment variable ``FORGE_STUDENT_RUNTIME`` sets the
default.

>>> student_runtime({"FORGE_STUDENT_RUNTIME": "torch"})
'torch'
>>> student_runtime({"FORGE_STUDENT_RUNTIME": "tpu"})
Traceback (most recent call last):
...
generator.errors.ConfigError: FORGE_STUDENT_RUNTIME='tpu' is not a student runtime; use auto, gguf, torch
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from generator.errors import ConfigError, ModelLoadError
from generator.local.gguf_worker import GGUF_ARTEFACT

__all__ = ["GGUF_ARTEFACT", "RUNTIMES", "student_backend", "student_runtime"]

log = logging.getLogger(__name__)

RUNTIMES: Final = ("auto", "gguf", "torch")


def student_runtime(env: Mapping[str, str] | None = None) -> str:
    """The runtime named by ``FORGE_STUDENT_RUNTIME`` (default ``auto``)."""
    value = (os.environ if env is None else env).get("FORGE_STUDENT_RUNTIME", "auto").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise ConfigError(f"FORGE_STUDENT_RUNTIME={value!r} is not a student runtime; use {', '.join(RUNTIMES)}")
    return value


def student_backend(model_dir: str | Path, *, version: str | None = None, runtime: str | None = None,
                    **kwargs: Any) -> Any:
    """A facade backend serving the level student in ``model_dir``, named ``"student"``.

    Keyword arguments (``max_tries``, ``temperature``, ``repair``, ...) go to
    the backend chosen.  The caller owns the backend: call ``close()`` on it
    when done (the GGUF worker is a child process).
    """
    runtime = runtime or student_runtime()
    if runtime not in RUNTIMES:
        raise ConfigError(f"student runtime {runtime!r} is unknown; use {', '.join(RUNTIMES)}")
    model_dir = Path(model_dir)
    gguf = model_dir / GGUF_ARTEFACT
    if runtime != "torch":
        from generator.local.gguf_worker import GGUFBackend, runtime_available

        if runtime_available() and gguf.is_file():
            backend = GGUFBackend(gguf, name="student", version=version, **kwargs)
            log.info("student %s served from %s in a worker process", backend.model_version, gguf)
            return backend
        if runtime == "gguf":
            why = "no GGUF runtime is installed (pip install 'dungeon-forge[gguf]')" if gguf.is_file() \
                else f"{gguf} is missing"
            raise ModelLoadError(f"student runtime 'gguf' requested but {why}")
    from generator.local.student import StudentBackend

    backend = StudentBackend(model_dir, **kwargs)
    if version is not None:
        backend.model_version = version
    return backend
