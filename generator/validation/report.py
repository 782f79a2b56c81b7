"""What the validator hands back: failures, the report and the input limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

if TYPE_CHECKING:
    from engine.core.level import Level

#: The gates in order, with the one-line rule each enforces (docs and feedback use this).
GATES: Final[dict[str, str]] = {
    "V0": "the input parses as a Level JSON object with the right field types",
    "V1": "size matches the spec, rows are rectangular, tiles, theme and kinds are known",
    "V2": "the border is closed (outer rows and columns are all wall '#')",
    "V3": "nothing stands on a wall or outside the map, no two things share a tile",
    "V4": "exactly one spawn and one exit",
    "V5": "enemy count within the spec's tolerance, no enemy within 4 steps of the spawn",
    "V6": "one connected walkable region; exit, enemies and items reachable from the spawn",
    "V7": "wall density between 10% and 60%",
}

#: Every failure code the validator emits, with what it means.  Codes are stable: add, never rename.
CODES: Final[dict[str, str]] = {
    "V0.parse": "not JSON at all: empty, truncated, invalid UTF-8, NaN, nested too deeply",
    "V0.too_large": "the input (or a list in it) is over the configured limit",
    "V0.duplicate_key": "a JSON object names the same key twice",
    "V0.schema": "a field is missing, null where it may not be, of the wrong type, or a negative coordinate",
    "V1.too_large": "declared or actual width/height over the limit (checked before allocating)",
    "V1.row_count": "the number of rows differs from height, or there are none",
    "V1.row_length": "ragged rows, or every row's length differs from width",
    "V1.unknown_tile": "a row holds a character other than '#', '.', '+'",
    "V1.unknown_theme": "the theme is not one of the known themes",
    "V1.unknown_enemy_kind": "an enemy kind is not in the content catalogue",
    "V1.unknown_item_kind": "an item kind is not in the content catalogue",
    "V1.spec_width": "the map's width differs from the spec",
    "V1.spec_height": "the map's height differs from the spec",
    "V1.theme_mismatch": "the theme differs from the spec",
    "V2.open_border": "a border tile is floor or door",
    "V3.out_of_bounds": "a thing's position is outside the map",
    "V3.on_wall": "a thing stands on a wall tile",
    "V3.overlap": "two things share one tile (reported on the later one)",
    "V4.spawn_missing": "there is no spawn",
    "V4.exit_missing": "there is no exit",
    "V5.enemy_count": "enemy count outside spec.enemies +- max(1, floor(spec.enemies / 4))",
    "V5.enemy_near_spawn": "an enemy within 4 steps (Chebyshev) of the spawn",
    "V6.disconnected": "a walkable region other than the spawn's (one failure per region)",
    "V6.unreachable_exit": "the exit is not in the spawn's region",
    "V6.unreachable_enemy": "an enemy is not in the spawn's region",
    "V6.unreachable_item": "an item is not in the spawn's region",
    "V7.density_low": "walls cover less than 10% of the map",
    "V7.density_high": "walls cover more than 60% of the map",
}


class Failure(msgspec.Struct, frozen=True, omit_defaults=True):
    """One broken rule.

    ``code`` is stable (tests, dashboards and the LLM prompt rely on it),
    ``message`` is for a level designer, ``where`` is a JSON path
    (``$.enemies[3]``) or a tile ``(x, y)``.  ``at`` repeats the tile as a
    pair when the failure has one, so tools can mark it on a picture.
    """

    gate: str
    code: str
    message: str
    where: str
    at: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    def __str__(self) -> str:
        return f"{self.code} {self.where}: {self.message}"


def failure_dict(f: Any) -> dict[str, Any]:
    """One failure as the dict records store: a :class:`Failure` via :meth:`Failure.to_dict`, a mapping
    as is; for a custom validator's failures, their own ``to_dict()`` or msgspec fields, else their
    ``gate``/``code``/``message``/``where`` attributes.

    >>> failure_dict(Failure("V2", "V2.open_border", "gap", "$.rows[0][3]"))
    {'gate': 'V2', 'code': 'V2.open_border', 'message': 'gap', 'where': '$.rows[0][3]'}
    """
    if isinstance(f, Failure):
        return f.to_dict()
    if isinstance(f, Mapping):
        return dict(f)
    if hasattr(f, "to_dict"):
        return f.to_dict()
    if isinstance(f, msgspec.Struct):
        return msgspec.to_builtins(f)
    return {k: getattr(f, k) for k in ("gate", "code", "message", "where") if hasattr(f, k)}


@dataclass(frozen=True)
class ValidationLimits:
    """Caps checked *before* anything is allocated, so hostile input cannot hang the game.

    ``max_failures_per_code`` caps repeated tile failures (an open border, a
    row of unknown glyphs); the rest are summarised in one extra failure.
    """

    max_bytes: int = 4_000_000
    max_width: int = 256
    max_height: int = 256
    max_entities: int = 4096
    max_name_length: int = 1000
    max_failures_per_code: int = 20


DEFAULT_LIMITS: Final = ValidationLimits()


class ValidationReport:
    """The verdict on one level: ``valid`` and every failure, in gate order.

    ``level`` is the parsed :class:`~engine.core.level.Level` whenever the
    input could be turned into one (even if it is invalid), else ``None``.
    """

    __slots__ = ("valid", "_failures", "_level", "_build", "_fill")

    def __init__(self, failures: tuple[Failure, ...], level: Level | None = None, build: Any = None,
                 *, fill: Any = None, valid: bool | None = None) -> None:
        self.valid: bool = not failures if valid is None else valid
        self._failures = failures
        self._level = level
        self._build = build  # a zero-argument callable making the Level on first use
        # A zero-argument callable returning the full report, for a batch verdict whose failure
        # text is written on first use (see validate_batch); None once the report is complete.
        self._fill = fill

    def _complete(self) -> None:
        fill, self._fill = self._fill, None
        full = fill()
        self._failures, self._level, self._build = full._failures, full._level, full._build
        if full.valid != self.valid:  # the batch screen and the full gates disagree: trust the gates
            self.valid = full.valid

    @property
    def failures(self) -> tuple[Failure, ...]:
        if self._fill is not None:
            self._complete()
        return self._failures

    @property
    def level(self) -> Level | None:
        if self._fill is not None:
            self._complete()
        if self._level is None and self._build is not None:
            build, self._build = self._build, None
            self._level = build()
        return self._level

    def counts(self) -> dict[str, int]:
        """Failures per gate (every gate present, zero when it passed)."""
        out = dict.fromkeys(GATES, 0)
        for f in self.failures:
            out[f.gate] += 1
        return out

    def codes(self) -> list[str]:
        return [f.code for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "failures": [f.to_dict() for f in self.failures], "gates": self.counts()}

    def feedback(self, max_lines: int = 15) -> str:
        """A compact text for an LLM retry: what broke, where, and the rule.

        >>> ValidationReport(()).feedback()
        'The level passed every check.'
        """
        if self.valid:
            return "The level passed every check."
        n = len(self.failures)
        lines = [f"The level failed {n} check{'s' if n != 1 else ''}; fix all of them and return the whole level again:"]
        for f in self.failures[:max_lines]:
            lines.append(f"- {f.code} at {f.where}: {f.message}")
        if n > max_lines:
            rest = sorted({f.code for f in self.failures[max_lines:]})
            lines.append(f"- ... and {n - max_lines} more ({', '.join(rest)})")
        broken = sorted({f.gate for f in self.failures})
        lines.append("Rules: " + " | ".join(f"{g}: {GATES[g]}" for g in broken))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ValidationReport(valid={self.valid}, failures={[f.code for f in self.failures]})"
