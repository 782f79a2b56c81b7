"""Which large model teaches, how long to wait for it, how often to retry.

Settings come from, in order of precedence: environment variables, the
``[teacher]`` table of ``forge.toml`` in the data directory (or a TOML file
given explicitly), then the defaults below.

===================  ========================  ==================================
environment          TOML key                  meaning
===================  ========================  ==================================
FORGE_TEACHER        model                     litellm model name: ``gpt-4o-mini``,
                                               ``anthropic/claude-3-5-haiku-latest``,
                                               ``gemini/gemini-2.0-flash``,
                                               ``openai/<name>`` for a local server
OPENAI_BASE_URL      base_url                  an OpenAI-compatible endpoint
                                               (vLLM, llama.cpp server, a proxy)
FORGE_TEACHER_TIMEOUT  timeout_s               seconds per HTTP request
FORGE_TEACHER_RETRIES  max_retries             HTTP retries (429 honours Retry-After)
===================  ========================  ==================================

API keys are never part of this config: litellm reads them from the
provider's usual variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``), and nothing here logs, stores or formats them.

>>> cfg = TeacherConfig.load(env={"FORGE_TEACHER": "anthropic/claude-3-5-haiku-latest"}, toml_path=None)
>>> cfg.model, cfg.key_env()
('anthropic/claude-3-5-haiku-latest', 'ANTHROPIC_API_KEY')
>>> cfg.usable(env={})
False
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from generator.errors import ConfigError

_NO_KEY_PLACEHOLDER: Final = "unused"  # keyless local servers still need a non-empty header


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher model and its explicit limits (never library defaults)."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    timeout_s: float = 60.0  #: per HTTP request (litellm's default is 600 s)
    max_retries: int = 1  #: HTTP-level retries by the client, honouring Retry-After on 429
    transient_retries: int = 0  #: byllm's extra retries on timeouts/5xx (its default is 2)
    max_output_retries: int = 1  #: byllm re-asks on unparsable JSON (its default is 3)
    temperature: float = 0.7
    max_tokens: int = 4096

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("teacher model is empty; set FORGE_TEACHER or [teacher].model in forge.toml")
        if not self.timeout_s > 0:
            raise ConfigError(f"teacher timeout_s must be > 0, got {self.timeout_s}; fix [teacher].timeout_s")
        for name in ("max_retries", "transient_retries", "max_output_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"teacher {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None | bool = True,
    ) -> TeacherConfig:
        """Defaults < ``[teacher]`` in TOML < environment.

        ``toml_path=True`` reads ``forge.toml`` in the data directory when it
        exists; a path reads that file (it must exist); None/False reads none.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = _toml_path(toml_path, env)
        if path is not None:
            values.update(_read_toml(path))
        overrides = {
            "model": env.get("FORGE_TEACHER"),
            "base_url": env.get("OPENAI_BASE_URL"),
            "timeout_s": env.get("FORGE_TEACHER_TIMEOUT"),
            "max_retries": env.get("FORGE_TEACHER_RETRIES"),
        }
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**_coerce(values, origin=str(path) if path else "environment"))

    def key_env(self) -> str | None:
        """The environment variable holding this provider's key (None: unknown provider)."""
        name = self.model.lower()
        if name.startswith(("anthropic/", "claude")):
            return "ANTHROPIC_API_KEY"
        if name.startswith(("gemini/", "gemini-", "vertex_ai/")):
            return "GEMINI_API_KEY"
        if name.startswith(("openai/", "gpt-", "o1", "o3", "o4", "chatgpt")):
            return "OPENAI_API_KEY"
        return None

    def usable(self, env: Mapping[str, str] | None = None) -> bool:
        """True when a call can be attempted: the provider's key is set, or an endpoint is."""
        env = os.environ if env is None else env
        if self.base_url:
            return True
        key = self.key_env()
        if key == "GEMINI_API_KEY":
            return bool(env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY"))
        return bool(key and env.get(key))

    def placeholder_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """A dummy key for a keyless OpenAI-compatible endpoint; None when a real one is set."""
        env = os.environ if env is None else env
        if self.base_url and not env.get("OPENAI_API_KEY"):
            return _NO_KEY_PLACEHOLDER
        return None

    def describe(self) -> dict[str, Any]:
        """The settings as a dict for logs and reports (holds no secrets)."""
        out = dataclasses.asdict(self)
        out["key_env"] = self.key_env()
        return out


def _toml_path(toml_path: str | os.PathLike[str] | None | bool, env: Mapping[str, str]) -> Path | None:
    if toml_path is None or toml_path is False:
        return None
    if toml_path is True:
        from generator.paths import CONFIG_NAME, data_dir

        candidate = data_dir(env.get("FORGE_HOME") or None, create=False) / CONFIG_NAME
        return candidate if candidate.is_file() else None
    path = Path(toml_path)
    if not path.is_file():
        raise ConfigError(f"teacher config {path} does not exist; pass an existing TOML file")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    from generator.paths import read_table

    return read_table(path, "teacher")


def _coerce(values: dict[str, Any], *, origin: str) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(TeacherConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{origin}: unknown teacher setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = fields[name].type
        try:
            if kind in ("float",):
                out[name] = float(value)
            elif kind in ("int",):
                out[name] = int(value)
            else:
                out[name] = None if value in ("", None) else str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: teacher setting {name}={value!r} is not a valid {kind}") from None
    return out
