"""The Jac/byllm teacher (it reaches byllm only through :mod:`generator.capture.byllm_api`).

:class:`LLMTeacherBackend` implements the facade's ``Backend`` protocol by
running ``design_level`` from ``jac/levels.jac`` (a ``by llm()`` function) with
the previous attempt's validation failures as feedback.  The teacher model,
endpoint, timeouts and retry limits come from
:class:`generator.settings.TeacherConfig`; API keys stay in the
provider's environment variables and never pass through this module's
messages.

Everything heavy is imported on first use, so ``import generator.backends.teacher``
is cheap and works without a key::

    backend = LLMTeacherBackend()            # FORGE_TEACHER / forge.toml / gpt-4o-mini
    out = backend.generate(BackendRequest(spec=spec, seed=1))
    out.raw                                   # the level JSON the facade validates

Tests pass ``model=`` (a byllm ``MockLLM``) instead of a configured provider.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from generator.backends import BackendOutput, BackendRequest
from generator.errors import BackendError, GeneratorError
from generator.store.redact import scrub
from generator.settings import TeacherConfig

log = logging.getLogger(__name__)

__all__ = ["LLMTeacherBackend", "levels_module", "teacher_backend_from_config"]

_MIN_TIMEOUT_S = 0.5
_current_model: contextvars.ContextVar[Any] = contextvars.ContextVar("forge_teacher_model", default=None)
_current_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("forge_teacher_timeout", default=None)
_load_lock = threading.Lock()
_levels: ModuleType | None = None


def levels_module() -> ModuleType:
    """``jac/levels.jac`` imported through jaclang (compiled once, then cached).

    Its module-level ``llm`` is replaced by a selector that returns the model
    of the teacher making the current call, so several teachers (or a test's
    MockLLM) can share the module safely across threads.
    """
    global _levels
    if _levels is not None:
        if not isinstance(_levels.llm, _ModelSelector):  # someone assigned a model directly
            _levels.llm = _ModelSelector(_levels.llm)
        return _levels
    with _load_lock:
        if _levels is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download
            try:
                from generator import capture

                capture.install()
                import jac.levels as levels
            except ImportError as exc:
                raise GeneratorError(
                    f"the Jac teacher needs jaclang and byllm ({exc}); pip install 'dungeon-forge'"
                ) from exc
            levels.llm = _ModelSelector(levels.llm)
            _levels = levels
            from generator.guards.output import quiet_provider_libraries

            quiet_provider_libraries()  # byllm (loguru) and litellm output: keys redacted, no stdout banners
    return _levels


class _ModelSelector:
    """Stands in for ``llm`` in levels.jac: the current teacher's model, else jaclang's default."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback

    def __call__(self, **kwargs: Any) -> Any:
        model = _current_model.get()
        return (model if model is not None else self._fallback)(**kwargs)


@contextlib.contextmanager
def _using(model: Any, timeout_s: float | None) -> Iterator[None]:
    tokens = (_current_model.set(model), _current_timeout.set(timeout_s))
    try:
        yield
    finally:
        _current_timeout.reset(tokens[1])
        _current_model.reset(tokens[0])


def _teacher_model(cfg: TeacherConfig) -> Any:
    """A byllm ``Model`` with the config's limits applied to every request."""
    from generator.capture.byllm_api import model_class
    from generator.guards.output import quiet_provider_libraries

    Model = model_class()
    defaults = {
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "max_output_retries": cfg.max_output_retries,
        "stream_num_retries": cfg.transient_retries,
    }

    class ForgeTeacherModel(Model):  # type: ignore[misc, valid-type]
        """byllm's Model, with explicit timeout, retries and endpoint on each HTTP call."""

        def __call__(self, **kwargs: Any) -> Any:
            # `by llm()` calls the model with its own call params; keep ours underneath.
            self.call_params = {**defaults, **kwargs}
            return self

        def model_call_no_stream(self, params: dict[str, Any]) -> Any:
            quiet_provider_libraries()
            params = dict(params)
            params["timeout"] = _current_timeout.get() or cfg.timeout_s
            params["max_retries"] = cfg.max_retries
            if cfg.base_url:
                # byllm drops a configured base_url before the call; litellm takes it here.
                params["api_base"] = cfg.base_url
            return super().model_call_no_stream(params)

    placeholder = cfg.placeholder_key()
    return ForgeTeacherModel(model_name=cfg.model, api_key=placeholder or "", ctx_window=128_000)


class LLMTeacherBackend:
    """The Jac ``by llm()`` teacher behind the facade's Backend protocol.

    ``generate`` raises :class:`~generator.errors.BackendError` when the model
    cannot be reached or answers nothing usable in time; output that parses
    but breaks the gates is returned as is, for the facade to validate and feed
    back.  Unparsable output is returned raw too (the facade's V0 feedback is
    more useful to the next attempt than an exception).
    """

    name = "llm"

    def __init__(self, config: TeacherConfig | None = None, *, model: Any = None) -> None:
        self.config = config or TeacherConfig.load()
        self._model = model
        self._model_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return str(getattr(self._model, "model_name", None) or self.config.model)

    def _get_model(self) -> Any:
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = _teacher_model(self.config)
        return self._model

    def _timeout(self, request_deadline: float | None) -> float:
        left = None if request_deadline is None else request_deadline - time.monotonic()
        if left is not None and left <= 0:
            raise BackendError(f"teacher {self.model_name}: the request's deadline passed before the call; no time left")
        return max(_MIN_TIMEOUT_S, min(self.config.timeout_s, left if left is not None else self.config.timeout_s))

    def generate(self, request: BackendRequest) -> BackendOutput:
        """Design a level for ``request.spec``; ``request.feedback`` carries the last failures."""
        timeout = self._timeout(request.deadline)
        levels = levels_module()
        spec = levels.Spec(**request.spec.to_dict())
        design, seen, raw = self._run(levels.design_level, spec, request.feedback or "", timeout=timeout)
        from generator.capture import to_jsonable

        if design is not None:
            raw = json.dumps(to_jsonable(design), separators=(",", ":"))
        rec = seen[-1] if seen else None
        return BackendOutput(
            raw=raw or "",
            model=self.model_name,
            prompt_tokens=sum(r.prompt_tokens for r in seen),
            completion_tokens=sum(r.completion_tokens for r in seen),
            cost_usd=sum(r.cost_usd for r in seen),
            messages=rec.messages if rec is not None else None,
        )

    def choose_next_spec(self, summary: Mapping[str, Any], previous: Any, *, deadline: float | None = None) -> Any:
        """Adaptive difficulty: the next ``LevelSpec`` from a player summary.

        ``summary`` has the fields of ``PlayerSummary`` in levels.jac (missing
        ones default to 0 / ""); ``previous`` is a ``LevelSpec``.  Raises
        BackendError when the model fails or proposes a spec out of range.
        """
        from engine.core.errors import SpecError
        from engine.core.level import LevelSpec
        from generator.capture import to_jsonable

        levels = levels_module()
        fields = {
            "levels_played": 0,
            "levels_completed": 0,
            "deaths": 0,
            "mean_turns": 0.0,
            "mean_fun": 0.0,
            "mean_health_left": 0.0,
            "notes": "",
        }
        fields.update({k: v for k, v in summary.items() if k in fields})
        player = levels.PlayerSummary(**fields)
        prev = levels.Spec(**previous.to_dict())
        result, _seen, raw = self._run(levels.choose_next_spec, player, prev, timeout=self._timeout(deadline))
        if result is None:
            raise BackendError(f"teacher {self.model_name} gave no usable spec (raw output: {(raw or '')[:200]!r})")
        try:
            return LevelSpec.from_dict(to_jsonable(result))
        except SpecError as exc:
            raise BackendError(f"teacher {self.model_name} proposed an invalid spec: {exc}") from None

    def _run(self, fn: Any, *args: Any, timeout: float) -> tuple[Any, list[Any], str | None]:
        """Call a levels.jac function; (result or None if unparsable, capture records, raw text)."""
        from generator import capture
        from generator.capture.byllm_api import output_conversion_error

        OutputConversionError = output_conversion_error()

        model = self._get_model()
        with capture.observe() as seen, capture.teacher_only(), _using(model, timeout):
            try:
                return fn(*args), seen, None
            except OutputConversionError as exc:
                raw = getattr(exc, "raw_output", None)
                if raw:
                    log.info("teacher %s answered unparsable output; handing it to the validator", self.model_name)
                    return None, seen, str(raw)
                raise BackendError(f"teacher {self.model_name} answered nothing parsable: {scrub(str(exc))[:300]}") from None
            except Exception as exc:
                raise BackendError(
                    f"teacher {self.model_name} failed ({type(exc).__name__}): {scrub(str(exc))[:300]}; "
                    "check FORGE_TEACHER, the provider key variable and OPENAI_BASE_URL"
                ) from None


def teacher_backend_from_config(config: TeacherConfig | None = None) -> LLMTeacherBackend | None:
    """The configured teacher when it can be used (a key or an endpoint is set), else None.

    Offline, without a key, the facade serves procedural levels instead.
    """
    cfg = config or TeacherConfig.load()
    if not cfg.usable():
        log.info("no key for teacher %s (%s unset) and no OPENAI_BASE_URL: LLM teacher off", cfg.model, cfg.key_env())
        return None
    return LLMTeacherBackend(cfg)
