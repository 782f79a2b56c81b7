"""The routing states and the numbers behind every routing decision (``[routing]`` of forge.toml)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError

log = logging.getLogger(__name__)


class RouteState(StrEnum):
    TEACHER = "teacher"
    SHADOW = "shadow"
    LOCAL = "local"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The numbers behind every routing decision (defaults documented in docs/routing.md)."""

    min_shadow_samples: int = 30
    """Shadow answers needed before a student may serve."""
    promote_lower_bound: float = 0.80
    """Wilson 95 % lower bound of shadow validity (first attempt) that promotion needs, or of shadow
    agreement with the teacher for a site judged by agreement (``[judge]`` in forge.toml)."""
    min_confidence: float | None = None
    """Serve a student output only if its mean token log-probability is at least this (None: any)."""
    spot_check_rate: float = 0.05
    """Share of locally served requests also sent to the teacher for comparison."""
    rollback_min_samples: int = 20
    """Live samples of a version (and of its predecessor) needed before a rollback is judged."""
    rollback_validity_margin: float = 0.10
    """Roll back when live validity's Wilson upper bound is below the predecessor's rate minus this."""
    rollback_fun_margin: float = 0.10
    """... or when mean fun is this much below the predecessor's and the drop is significant."""
    alpha: float = 0.05
    """Significance level of the fun test (one-sided Mann-Whitney U)."""
    shadow_backlog: int = 32
    """Shadow answers a Jac program may have queued; a call beyond it is recorded as skipped."""
    shadow_exit_wait_s: float = 30.0
    """At program exit, wait at most this long for queued shadow answers; the rest are recorded as skipped."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RoutingPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise GeneratorError(f"unknown routing setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_data_dir(cls, data_dir: str | Path | None = None) -> RoutingPolicy:
        """``[routing]`` of the data dir's ``forge.toml`` (defaults when absent), as the facade reads it."""
        from generator.paths import CONFIG_NAME, read_table
        from generator.paths import data_dir as resolve

        return cls.from_mapping(read_table(resolve(data_dir, create=False) / CONFIG_NAME, "routing"))
