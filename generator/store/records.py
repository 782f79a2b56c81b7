"""What the store keeps about each generation call (wire types shared by the
facade, the capture plugin, the store and the trainer)."""

from __future__ import annotations

import contextvars
import time
import uuid
from typing import Any

import msgspec


class CallRecord(msgspec.Struct, kw_only=True):
    """One call at one call site: a `by llm()` call, or one facade attempt.

    ``args`` and ``result`` are JSON-able and form the student's compact
    training pair (args-JSON -> result-JSON).  ``call_id`` doubles as the
    *generation id* that telemetry and fun scores join to.
    """

    call_id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)
    site: str  #: call-site id ``module:qualname#schema-hash``
    backend: str  #: "llm", "procedural", "student", "mock", ...
    model: str | None = None
    model_version: str | None = None
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    messages: list[Any] | None = None  #: what was sent to the model, if any
    output_schema: dict[str, Any] | None = None
    raw_output: str | None = None
    result: Any = None  #: parsed result (for levels: the Level JSON object)
    valid: bool | None = None  #: None when nobody judged it
    failures: list[dict[str, Any]] = msgspec.field(default_factory=list)
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    created: float = msgspec.field(default_factory=time.time)
    session_id: str | None = None
    request_id: str | None = None  #: groups the attempts of one facade request
    attempt: int = 1
    served: bool = False  #: True for the attempt whose output the caller received
    confidence: float | None = None
    #: the HTTP requests behind the call: ``{"requests", "retries", "faults": {kind: n}}`` (generator.capture.transport)
    transport: dict[str, Any] | None = None


class CaptureSlot(msgspec.Struct, kw_only=True):
    """Filled by the capture plugin when the facade is already recording the call.

    The facade sets :data:`CURRENT_SLOT` around a backend call; the plugin,
    seeing a slot, writes what it saw here instead of storing its own row, so
    one generation is one row.
    """

    site: str | None = None
    model: str | None = None
    messages: list[Any] | None = None
    output_schema: dict[str, Any] | None = None
    raw_output: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    calls: int = 0


CURRENT_SLOT: contextvars.ContextVar[CaptureSlot | None] = contextvars.ContextVar(
    "forge_capture_slot", default=None
)
