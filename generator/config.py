"""Generator settings: ``forge.toml`` in the data directory, then the environment.

Precedence, lowest to highest: the dataclass defaults, the ``[generator]``
table of ``<data dir>/forge.toml``, the ``FORGE_*`` environment variables,
and finally arguments given in code or on a command line.

    # forge.toml
    [generator]
    backends = ["llm", "procedural"]   # cascade order; procedural is always last
    deadline_s = 20.0                  # a valid level within this, whatever the backends do
    max_attempts = 3                   # per backend, each retry gets the failures as feedback

Environment: ``FORGE_BACKENDS=llm,procedural``, ``FORGE_DEADLINE_S``,
``FORGE_MAX_ATTEMPTS``, ``FORGE_PROCEDURAL_RESERVE_S``, ``FORGE_RECORD``.
The teacher itself (model, endpoint, HTTP timeout and retries) is the
``[teacher]`` table / ``FORGE_TEACHER*`` variables of
:mod:`generator.teacher_config`.  API keys are never read from ``forge.toml``:
only the provider's usual variables count, and this module only checks
whether one is set.

Without a key or an endpoint the default cascade is procedural only: offline,
the "teacher" is the procedural generator.

>>> cfg = GeneratorConfig.from_mapping({"backends": ["procedural"], "deadline_s": 5})
>>> cfg.backends, cfg.deadline_s
(('procedural',), 5.0)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from generator.errors import ConfigError
from generator.store.redact import KEY_VARIABLES

log = logging.getLogger(__name__)

__all__ = ["BACKEND_NAMES", "KEY_VARIABLES", "GeneratorConfig", "teacher_configured"]

#: Backend names a cascade may list.
BACKEND_NAMES: Final = ("llm", "student", "remote_student", "procedural")
#: Environment variables that hold a teacher's API key (their values are never read here).
#: Setting an OpenAI-compatible endpoint (a local server) also enables the LLM teacher.
ENDPOINT_VARIABLE: Final = "OPENAI_BASE_URL"

_ENV: Final[dict[str, str]] = {
    "FORGE_BACKENDS": "backends",
    "FORGE_DEADLINE_S": "deadline_s",
    "FORGE_MAX_ATTEMPTS": "max_attempts",
    "FORGE_PROCEDURAL_RESERVE_S": "procedural_reserve_s",
    "FORGE_RECORD": "record",
}


def teacher_configured(
    env: Mapping[str, str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> bool:
    """True when the teacher can be reached: its key variable or an endpoint is set."""
    env = os.environ if env is None else env
    try:
        return teacher_settings(data_dir, env=env).usable(env)
    except ImportError:  # pragma: no cover - teacher_config ships with the package
        return any(env.get(k) for k in (*KEY_VARIABLES, ENDPOINT_VARIABLE))
    except ConfigError:
        log.warning("teacher settings are invalid; the LLM teacher is off", exc_info=True)
        return False


@dataclass(frozen=True)
class GeneratorConfig:
    """How the facade serves levels.  ``backends`` empty means "choose": the LLM
    teacher when a key or endpoint is configured, then procedural."""

    backends: tuple[str, ...] = ()
    deadline_s: float = 30.0
    """Wall-clock budget of one request; a valid level is returned within it."""
    max_attempts: int = 3
    """Attempts per backend (the first plus retries with validation feedback)."""
    procedural_reserve_s: float = 1.0
    """Time kept back for the procedural fallback: backends are skipped once less is left."""
    record: bool = True
    """Record every attempt in the store."""

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKEND_NAMES]
        if unknown:
            raise ConfigError(f"unknown backend(s) {unknown} in generator settings; known: {', '.join(BACKEND_NAMES)}")
        if not self.deadline_s > 0:
            raise ConfigError(f"generator setting deadline_s must be > 0 seconds, got {self.deadline_s}")
        if self.procedural_reserve_s < 0:
            raise ConfigError(f"generator setting procedural_reserve_s must be >= 0, got {self.procedural_reserve_s}")
        if self.max_attempts < 1:
            raise ConfigError(f"generator setting max_attempts must be >= 1, got {self.max_attempts}")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "settings") -> GeneratorConfig:
        """Build from a plain mapping (a TOML table, parsed env), converting and checking types."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown generator setting(s) {unknown} in {origin}; known: {sorted(fields)}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            default = fields[key].default
            try:
                values[key] = _convert(raw, default)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"generator setting {key}={raw!r} in {origin} is not a {type(default).__name__}"
                ) from None
        return cls(**values)

    @classmethod
    def load(
        cls, data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> GeneratorConfig:
        """Defaults < ``forge.toml`` ``[generator]`` < ``FORGE_*`` env < ``overrides`` (None ignored)."""
        from generator.paths import CONFIG_NAME, read_table
        from generator.paths import data_dir as resolve

        env = os.environ if env is None else env
        merged: dict[str, Any] = {}
        path = resolve(data_dir) / CONFIG_NAME
        table = read_table(path, "generator")
        if table:
            merged.update(table)
            cls.from_mapping(table, origin=str(path))  # report bad keys against the file
        for var, key in _ENV.items():
            if env.get(var):
                merged[key] = env[var]
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(merged, origin=f"{path} / environment")

    # ------------------------------------------------------------------ derived

    def cascade(
        self, env: Mapping[str, str] | None = None, data_dir: str | os.PathLike[str] | None = None
    ) -> tuple[str, ...]:
        """The backend names to try, in order, always ending with ``procedural``."""
        names = list(self.backends) or (["llm"] if teacher_configured(env, data_dir) else [])
        names = [n for n in dict.fromkeys(names) if n != "procedural"]
        return (*names, "procedural")

    def describe(self) -> dict[str, Any]:
        """Settings for logs and reports (no secrets: only whether a key is set)."""
        out = dataclasses.asdict(self)
        out["cascade"] = list(self.cascade())
        out["teacher_key_set"] = teacher_configured()
        return out


def _convert(raw: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if isinstance(raw, str):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if isinstance(raw, (list, tuple)) and all(isinstance(p, str) for p in raw):
            return tuple(raw)
        raise TypeError(raw)
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise TypeError(raw)
    if isinstance(default, int):
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise TypeError(raw)
        return int(raw)
    if isinstance(default, float):
        if isinstance(raw, bool):
            raise TypeError(raw)
        return float(raw)
    if isinstance(default, str):
        if not isinstance(raw, str):
            raise TypeError(raw)
        return raw
    return raw


def teacher_settings(data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Any:
    """The teacher's :class:`~generator.teacher_config.TeacherConfig` for this data dir."""
    from generator.teacher_config import TeacherConfig

    path = config_path(data_dir)
    return TeacherConfig.load(env=env, toml_path=path if path.is_file() else None)


def config_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``forge.toml`` lives for a data directory."""
    from generator.paths import CONFIG_NAME
    from generator.paths import data_dir as resolve

    return resolve(data_dir) / CONFIG_NAME
