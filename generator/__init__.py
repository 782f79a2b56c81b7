"""Dungeon Forge level generator: facade, validation, backends, capture and store.

The public API is imported lazily so ``import generator`` stays cheap (no
jaclang, no torch) for games that only need validation.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LevelGenerator": "generator.facade",
    "GeneratedLevel": "generator.facade",
    "validate_level": "generator.validation",
    "validate_batch": "generator.validation",
    "ValidationReport": "generator.validation",
    "generate_procedural": "generator.backends.procedural",
    "GeneratorError": "generator.errors",
    "GeneratorConfig": "generator.settings",
    "make_backend": "generator.backends.factory",
    "Backend": "generator.backends",
    "BackendRequest": "generator.backends",
    "BackendOutput": "generator.backends",
    "ProceduralBackend": "generator.backends",
    "Store": "generator.store",
    "StoreSink": "generator.store.telemetry_sink",
    "launch_background": "generator.training.background",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'generator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
