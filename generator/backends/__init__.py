"""Backends: everything that proposes a level for a spec, and the one protocol they share.

* :mod:`generator.backends.base` -- ``Backend``, ``BackendRequest``, ``BackendOutput``.
* :mod:`generator.backends.procedural` -- the offline generator and ``ProceduralBackend``.
* :mod:`generator.backends.teacher` -- the Jac/byllm teacher, ``LLMTeacherBackend`` (imported on use).
* :mod:`generator.backends.student` -- which runtime serves a promoted student (GGUF worker or torch).
* :mod:`generator.backends.remote` -- a student behind ``python -m generator.serve``.

:func:`generator.backends.factory.make_backend` builds one from its config
name (``generator.facade`` and ``generator`` re-export it).
"""

from __future__ import annotations

from generator.backends.base import Backend, BackendOutput, BackendRequest, time_left
from generator.backends.procedural import ProceduralBackend

__all__ = ["Backend", "BackendOutput", "BackendRequest", "ProceduralBackend", "time_left"]
