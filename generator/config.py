"""Generator settings, kept importable here: the model and its loader are :mod:`generator.settings`.

Precedence, lowest to highest: the defaults, the ``[generator]`` table of
``<data dir>/forge.toml``, the ``FORGE_*`` environment variables, and
finally arguments given in code or on a command line.  API keys are never
read from ``forge.toml``: only the provider's usual variables count.

>>> cfg = GeneratorConfig.from_mapping({"backends": ["procedural"], "deadline_s": 5})
>>> cfg.backends, cfg.deadline_s
(('procedural',), 5.0)
"""

from __future__ import annotations

from generator.settings import (
    BACKEND_NAMES,
    ENDPOINT_VARIABLE,
    KEY_VARIABLES,
    GeneratorConfig,
    config_path,
    teacher_configured,
    teacher_settings,
)

__all__ = [
    "BACKEND_NAMES",
    "ENDPOINT_VARIABLE",
    "KEY_VARIABLES",
    "GeneratorConfig",
    "config_path",
    "teacher_configured",
    "teacher_settings",
]
