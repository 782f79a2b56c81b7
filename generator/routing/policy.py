"""The routing states, and the numbers behind every routing decision (``[routing]`` of forge.toml,
:class:`generator.settings.RoutingPolicy`)."""

from __future__ import annotations

import logging
from enum import StrEnum

from generator.settings import RoutingPolicy  # the [routing] table: defined with the other settings

log = logging.getLogger(__name__)


class RouteState(StrEnum):
    TEACHER = "teacher"
    SHADOW = "shadow"
    LOCAL = "local"
    ROLLED_BACK = "rolled_back"


__all__ = ["RouteState", "RoutingPolicy"]
