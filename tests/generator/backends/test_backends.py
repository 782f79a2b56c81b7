"""The backend protocol and the procedural backend."""

from __future__ import annotations

import dataclasses
import time

import pytest

from engine.core.level import LevelSpec
from generator.backends import Backend, BackendOutput, BackendRequest, ProceduralBackend, time_left

SPEC = LevelSpec(width=20, height=14, difficulty=3, enemies=2, items=2, theme="crypt")


class EchoBackend:
    name = "echo"

    def generate(self, request: BackendRequest) -> BackendOutput:
        return BackendOutput(raw="{}", model="echo")


def test_request_is_frozen_and_has_defaults():
    req = BackendRequest(spec=SPEC, seed=3)
    assert (req.feedback, req.attempt, req.deadline) == (None, 1, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.seed = 4  # type: ignore[misc]


def test_deadline_seconds_left():
    req = BackendRequest(spec=SPEC, seed=0, deadline=time.monotonic() + 5)
    assert 0 < req.seconds_left() <= 5
    assert time_left(None) is None


def test_protocol_is_structural():
    assert isinstance(EchoBackend(), Backend)
    assert isinstance(ProceduralBackend(), Backend)
    assert not isinstance(object(), Backend)


def test_procedural_backend_returns_parsed_valid_level():
    pytest.importorskip("generator.backends.procedural")
    from generator.validation import validate_level

    out = ProceduralBackend().generate(BackendRequest(spec=SPEC, seed=11))
    assert out.level is not None and out.model == "procedural"
    assert (out.level.width, out.level.height) == (20, 14)
    assert validate_level(out.raw, SPEC).valid


def test_procedural_retry_uses_another_seed():
    pytest.importorskip("generator.backends.procedural")
    first = ProceduralBackend().generate(BackendRequest(spec=SPEC, seed=11))
    again = ProceduralBackend().generate(BackendRequest(spec=SPEC, seed=11))
    retry = ProceduralBackend().generate(BackendRequest(spec=SPEC, seed=11, attempt=2))
    assert first.raw == again.raw
    assert first.raw != retry.raw
