"""Tokens and cost of a ``by llm()`` call, counted where byllm's responses arrive."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from generator.capture import byllm_api


@dataclasses.dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    responses: int = 0  #: provider responses counted where they arrive (before parsing)

    def add(self, usage: Any) -> None:
        self.prompt += _usage_int(usage, "prompt_tokens")
        self.completion += _usage_int(usage, "completion_tokens")


current_usage: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("forge_capture_usage", default=None)
_metered = False
_metered_lock = threading.Lock()


def _usage_int(usage: Any, key: str) -> int:
    if usage is None:
        return 0
    value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def ensure_metered() -> None:
    """Count tokens per call: wrap byllm's dispatch methods once (results pass through untouched).

    byllm's typed-output loop keeps no usage for non-streaming calls, so the
    plugin reads it where responses arrive while a capture is active in the
    current context: from the provider response in ``Model.model_call_no_stream``
    (so attempts whose output failed to parse still count), else from the
    ``CompletionResult`` of ``dispatch_no_streaming`` (MockLLM, custom models).
    """
    global _metered
    if _metered:
        return
    with _metered_lock:
        if _metered:
            return
        byllm_api.wrap_dispatch(_metering)
        _metered = True


def _metering(original: Callable[..., Any], where: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def ametered(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen = _responses_so_far()
            result = await original(self, *args, **kwargs)
            _count(result, where, seen)
            return result

        ametered._forge_metered = True  # type: ignore[attr-defined]
        return ametered

    @functools.wraps(original)
    def metered(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen = _responses_so_far()
        result = original(self, *args, **kwargs)
        _count(result, where, seen)
        return result

    metered._forge_metered = True  # type: ignore[attr-defined]
    return metered


def _responses_so_far() -> int:
    meter = current_usage.get()
    return -1 if meter is None else meter.responses


def _count(result: Any, where: str, seen_before: int) -> None:
    meter = current_usage.get()
    if meter is None:
        return
    with contextlib.suppress(Exception):
        if where == "response":
            usage = result.get("usage") if isinstance(result, dict) else getattr(result, "usage", None)
            meter.add(usage)
            meter.responses += 1
        elif meter.responses == seen_before:  # nobody counted this dispatch's response yet
            meter.add(getattr(result, "usage", None))


def cost(backend: str, model: str, usage: Usage) -> float:
    """The call's price in USD from litellm's price list; 0 for mocks, local models and unknown models."""
    if backend != "llm" or not (usage.prompt or usage.completion):
        return 0.0
    try:
        import litellm

        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=usage.prompt, completion_tokens=usage.completion
        )
        return float(prompt_cost + completion_cost)
    except Exception:  # unknown model (local server, fine-tune): no price list entry
        return 0.0


# ----------------------------------------------------------------------------- default sink
