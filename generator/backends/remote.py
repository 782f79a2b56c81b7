"""A student served over HTTP (``python -m generator.serve``) as a facade backend.

:class:`RemoteStudentBackend` asks an OpenAI-compatible endpoint for a level
and hands the facade the answer; the facade validates it and retries or falls
back exactly as for the in-process :class:`~generator.local.student.StudentBackend`.
Every failure (timeout, refused connection, an HTTP error, a reply without a
result) is a :class:`~generator.errors.BackendError` whose message names the
endpoint and the cause, never the key.

The key is read from ``FORGE_STUDENT_API_KEY`` when it is set (the server
requires it when it was started with the same variable); otherwise a dummy
is sent.

Settings for :meth:`RemoteStudentBackend.from_config` (lowest to highest
precedence: defaults, the ``[student_server]`` table of ``forge.toml`` in the
data directory, ``FORGE_STUDENT_URL`` / ``FORGE_STUDENT_SITE`` /
``FORGE_STUDENT_TIMEOUT_S``)::

    [student_server]
    url = "http://studio-box:8088/v1"   # what `python -m generator.serve` printed
    site = "level"                      # model id on the server (default: the level site)
    timeout_s = 10.0                    # per HTTP call; a request's deadline shortens it

The key is never read from ``forge.toml``.

>>> from engine.core.level import LevelSpec
>>> from generator.backends import BackendRequest
>>> backend = RemoteStudentBackend("http://127.0.0.1:9/v1", timeout_s=0.5)  # port 9: nothing listens
>>> spec = LevelSpec(width=16, height=12, difficulty=1, enemies=1, items=1, theme="crypt")
>>> backend.generate(BackendRequest(spec=spec, seed=1))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
generator.errors.BackendError: remote student at http://127.0.0.1:9/v1 (level): cannot connect ...
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from generator.errors import BackendError, ConfigError
from generator.settings import STUDENT_API_KEY_ENV, RemoteStudentConfig

if TYPE_CHECKING:
    from generator.backends import BackendOutput, BackendRequest

__all__ = ["API_KEY_ENV", "CONFIG_TABLE", "RemoteStudentBackend", "RemoteStudentConfig"]

log = logging.getLogger(__name__)

#: Environment variable holding the key shared with ``python -m generator.serve``.
API_KEY_ENV: Final = STUDENT_API_KEY_ENV
#: The ``forge.toml`` table holding the remote student's settings (:class:`RemoteStudentConfig`).
CONFIG_TABLE: Final = "student_server"
_DUMMY_KEY: Final = "no-key"
#: Shortest time left worth a call; below it the request is refused at once.
_MIN_TIMEOUT_S: Final = 0.05


class RemoteStudentBackend:
    """The level site answered by a student behind ``base_url`` (an OpenAI-compatible ``/v1`` URL).

    ``site``: the model id on the server (a call-site id; ``"level"`` names
    the level site).  ``timeout_s`` bounds each HTTP call; a request's
    deadline shortens it further.  No retries here: the facade retries with
    validation feedback and falls back to the next backend.
    """

    name = "student"

    def __init__(self, base_url: str, site: str = "level", *, timeout_s: float = 30.0,
                 api_key: str | None = None) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"remote student base_url {base_url!r} must be an http(s) URL such as "
                              "http://studio-box:8088/v1")
        if not timeout_s > 0:
            raise ConfigError(f"remote student timeout_s must be > 0 seconds, got {timeout_s}")
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a core dependency
            raise ConfigError(f"the remote student needs the openai package ({exc}); pip install openai") from None
        self.base_url = base_url.rstrip("/")
        self.site = site
        self.timeout_s = float(timeout_s)
        self.model_version: str | None = None  #: the server's version, from the last answer
        key = api_key or os.environ.get(API_KEY_ENV) or _DUMMY_KEY
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=0)

    @classmethod
    def from_config(cls, data_dir: str | os.PathLike[str] | None = None, *, site: str | None = None,
                    env: Mapping[str, str] | None = None) -> RemoteStudentBackend:
        """Build from :class:`RemoteStudentConfig` (``forge.toml`` / env); ``site`` is used when the config names none.

        Raises :class:`~generator.errors.ConfigError` when no URL is configured.
        """
        cfg = RemoteStudentConfig.load(data_dir, env=env)
        if not cfg.url:
            raise ConfigError(f"the remote student has no URL: set url in [{CONFIG_TABLE}] of forge.toml or "
                              "FORGE_STUDENT_URL (what `python -m generator.serve` printed, e.g. http://box:8088/v1)")
        from generator.local.codec import is_level_site

        if not cfg.site and site and not is_level_site(site):
            return cls(cfg.url, site, timeout_s=cfg.timeout_s)
        return cls(cfg.url, cfg.site or "level", timeout_s=cfg.timeout_s)

    def _where(self) -> str:
        return f"remote student at {self.base_url} ({self.site})"

    def generate(self, request: BackendRequest) -> BackendOutput:
        from generator.backends import BackendOutput

        timeout = self.timeout_s
        left = request.seconds_left()
        if left is not None:
            if left < _MIN_TIMEOUT_S:
                raise BackendError(f"{self._where()}: no time left before the request's deadline")
            timeout = min(timeout, left)
        spec = request.spec.to_dict()
        openai = self._openai
        try:
            reply = self._client.chat.completions.create(
                model=self.site,
                messages=[{"role": "user", "content": json.dumps({"spec": spec}, separators=(",", ":"))}],
                seed=request.sampling_seed(),
                timeout=timeout,
            )
        except openai.APITimeoutError:
            raise BackendError(f"{self._where()}: no answer within {timeout:.1f} s; is the server overloaded?") from None
        except openai.APIConnectionError as exc:
            raise BackendError(f"{self._where()}: cannot connect ({_cause(exc)}); is "
                               "`python -m generator.serve` running there?") from None
        except openai.APIStatusError as exc:
            raise BackendError(f"{self._where()}: HTTP {exc.status_code}: {_server_message(exc)}") from None
        except openai.OpenAIError as exc:
            raise BackendError(f"{self._where()}: {type(exc).__name__}: {_server_message(exc)}") from None
        try:
            content = reply.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            content = None
        if not isinstance(content, str) or not content:
            raise BackendError(f"{self._where()}: the reply holds no message content")
        extra = _extras(reply)
        version = extra.get("model_version") or getattr(reply, "system_fingerprint", None)
        if version:
            self.model_version = str(version)
        usage = getattr(reply, "usage", None)
        confidence = extra.get("confidence")
        return BackendOutput(
            raw=content,
            model="student",
            model_version=self.model_version,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        )

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteStudentBackend({self.base_url!r}, site={self.site!r})"


def _extras(reply: Any) -> dict[str, Any]:
    """The server's ``dungeon_forge`` object (kept by the client as an extra field)."""
    extra = getattr(reply, "model_extra", None) or {}
    got = extra.get("dungeon_forge")
    return got if isinstance(got, dict) else {}


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner is not None else str(exc)


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
    return str(getattr(exc, "message", "") or exc)
