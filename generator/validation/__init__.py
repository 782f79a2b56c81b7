"""The level validator: gates V0-V7 (DESIGN.md) with NumPy and connected-component labelling.

Every level a game sees passes through here.  Bad input of any kind (broken
JSON, wrong types, huge claims, unknown glyphs) becomes located failures,
never an exception; the report lists *every* failure so an LLM can fix them
all in one retry (:meth:`ValidationReport.feedback`).

>>> from engine.core.level import LevelSpec
>>> rows = ["############", "#..........#", "#..######..#", "#..........#", "############"]
>>> doc = {"name": "ring", "width": 12, "height": 5, "rows": rows, "theme": "crypt",
...        "spawn": {"x": 1, "y": 1}, "exit": {"x": 10, "y": 3}, "enemies": [], "items": []}
>>> validate_level(doc).valid
True
>>> doc["enemies"] = [{"kind": "rat", "x": 3, "y": 3}]
>>> report = validate_level(doc)
>>> [(f.code, f.where) for f in report.failures]
[('V5.enemy_near_spawn', '$.enemies[0]')]
>>> validate_level(b'{"width": 8').failures[0].code
'V0.parse'
"""

from __future__ import annotations

import logging
from functools import partial
from collections.abc import Iterable, Sequence
from typing import Any

from engine.core.level import Level, LevelDoc, LevelSpec, Placed, rows_to_grid

from generator.validation.bulk import FAIL, PASS, UNKNOWN, screen

from generator.validation.gates import (
    DENSITY_RANGE,
    SPAWN_SAFE_RADIUS,
    NotSimple,
    check_level,
    check_one,
    check_stack,
    enemy_tolerance,
    gate_sorted,
)
from generator.validation.parse import Candidate, read_any, spec_checks
from generator.validation.report import (
    CODES,
    DEFAULT_LIMITS,
    GATES,
    Failure,
    ValidationLimits,
    ValidationReport,
    failure_dict,
)

__all__ = [
    "CODES",
    "DENSITY_RANGE",
    "GATES",
    "SPAWN_SAFE_RADIUS",
    "Failure",
    "ValidationLimits",
    "ValidationReport",
    "enemy_tolerance",
    "failure_dict",
    "validate_batch",
    "validate_level",
]

log = logging.getLogger(__name__)

LevelInput = Level | LevelDoc | str | bytes | dict[str, Any]

#: Levels checked per NumPy stack in a batch.  Small enough that the stack and its labels stay in
#: cache and reuse freed memory (4096 levels of 48x32 cost ~15% more CPU time, in page faults).
BATCH_CHUNK = 512


def validate_level(x: LevelInput, spec: LevelSpec | None = None, *,
                   limits: ValidationLimits | None = None) -> ValidationReport:
    """Judge one level against gates V0-V7; never raises for bad input.

    ``x`` may be Level JSON (``str``/``bytes``), a decoded ``dict``, a
    :class:`LevelDoc` or a :class:`Level`.  Without ``spec`` the size, theme
    and enemy-count checks against the spec are skipped; everything else runs.
    """
    limits = limits or DEFAULT_LIMITS
    try:
        if type(x) is Level:
            try:
                judged = check_level(x, spec, limits)
            except Exception as exc:  # noqa: BLE001 - NotSimple or odd values: the full reader explains them
                if not isinstance(exc, NotSimple):
                    log.debug("level fast route gave up (%s); reading it fully", type(exc).__name__)
            else:
                return ValidationReport((), level=x) if judged is None else _report(judged)
        cand = read_any(x, limits)
        if spec is not None:
            spec_checks(cand, spec)
        check_one(cand, spec, limits)
        gate_sorted([cand])
    except Exception as exc:  # noqa: BLE001 - the game must never see a validator crash
        log.exception("validator failed on %s input", type(x).__name__)
        return ValidationReport((Failure("V0", "V0.schema", f"the level could not be read ({type(exc).__name__}: "
                                         f"{str(exc)[:200]})", "$"),))
    return _report(cand)


def validate_batch(items: Iterable[LevelInput], specs: LevelSpec | Sequence[LevelSpec | None] | None = None, *,
                   limits: ValidationLimits | None = None) -> list[ValidationReport]:
    """Judge many levels at once; same reports as :func:`validate_level`, much faster.

    Levels of one size are stacked into one array and every gate runs once
    over the stack (one labelling call for all of them).  Every report's
    ``valid`` is known on return; the failure text of a failing level is
    written when its ``failures`` (or ``level``, ``feedback()``...) is
    first read, for up to :data:`BATCH_CHUNK` failing levels at a time, by
    the full validator, so it is exactly what :func:`validate_level` says.
    Do not change the items until their failures have been read: the text
    describes them as they are then (decision D20).
    ``specs`` is one spec for all, one per level, or None.
    """
    limits = limits or DEFAULT_LIMITS
    items = list(items)
    if specs is None or isinstance(specs, LevelSpec):
        spec_list: list[LevelSpec | None] = [specs] * len(items)
    else:
        spec_list = list(specs)
        if len(spec_list) != len(items):
            raise ValueError(f"validate_batch: {len(items)} levels but {len(spec_list)} specs; give one per level")
    n = len(items)
    try:
        verdicts, levels, wires = screen(items, spec_list, limits, BATCH_CHUNK)
    except Exception:  # noqa: BLE001 - the screen is only a shortcut; the full path decides
        log.exception("batch screen failed; validating every level fully")
        verdicts, levels, wires = [UNKNOWN] * n, [None] * n, [None] * n
    # the usual case first, in one pass: a Level that passed gets its report straight away
    out: list[ValidationReport] = [_Report((), lv) if v == PASS and lv is not None else None  # type: ignore[misc]
                                   for v, lv in zip(verdicts, levels)]
    unknown: list[int] = []
    failed: list[int] = []
    for k in [k for k, r in enumerate(out) if r is None]:
        v = verdicts[k]
        if v == PASS:
            out[k] = ValidationReport((), build=partial(_level_of, wires[k]))
        elif v == FAIL:
            failed.append(k)
        else:
            unknown.append(k)
    if unknown:
        for k, r in zip(unknown, _judge([items[k] for k in unknown], [spec_list[k] for k in unknown], limits)):
            out[k] = r
    # Levels the screen found failing get their verdict now and their failure text on first use,
    # written for a chunk of them at a time (the same full route as above).
    for s in range(0, len(failed), BATCH_CHUNK):
        chunk = failed[s:s + BATCH_CHUNK]
        later = _Deferred([items[k] for k in chunk], [spec_list[k] for k in chunk], limits)
        for j, k in enumerate(chunk):
            out[k] = ValidationReport((), level=levels[k], fill=partial(later.report, j), valid=False)
    return out


_Report = ValidationReport


class _Deferred:
    """Failure text for some levels the batch screen found failing, written on first use for all of them."""

    __slots__ = ("items", "specs", "limits", "reports")

    def __init__(self, items: list[Any], specs: list[LevelSpec | None], limits: ValidationLimits) -> None:
        self.items, self.specs, self.limits = items, specs, limits
        self.reports: list[ValidationReport] | None = None

    def report(self, j: int) -> ValidationReport:
        if self.reports is None:
            self.reports = _judge(self.items, self.specs, self.limits)
            self.items = self.specs = []  # type: ignore[assignment]
        return self.reports[j]


def _judge(items: list[Any], spec_list: list[LevelSpec | None], limits: ValidationLimits) -> list[ValidationReport]:
    """The full route for many levels: read each, then the gates over stacks of one shape."""
    cands: list[Candidate | None] = []
    for item, spec in zip(items, spec_list):
        try:
            c = read_any(item, limits)
            if spec is not None:
                spec_checks(c, spec)
            cands.append(c)
        except Exception:  # noqa: BLE001
            log.exception("validator failed reading a batch item")
            cands.append(None)
    groups: dict[tuple[int, int] | None, list[int]] = {}
    for k, c in enumerate(cands):
        if c is not None:
            groups.setdefault(None if c.grid is None else c.grid.shape, []).append(k)
    for members in groups.values():
        for s in range(0, len(members), BATCH_CHUNK):
            chunk = members[s:s + BATCH_CHUNK]
            group = [cands[k] for k in chunk]
            try:
                check_stack(group, [spec_list[k] for k in chunk], limits)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - fall back to one at a time
                log.exception("batch gate check failed; checking those levels one by one")
                for k in chunk:
                    cands[k] = None
    out: list[ValidationReport] = []
    for k, c in enumerate(cands):
        if c is None:
            out.append(validate_level(items[k], spec_list[k], limits=limits))
        else:
            gate_sorted([c])
            out.append(_report(c))
    return out


def _level_of(w: Any) -> Level:
    return Level(name=w.name, grid=rows_to_grid(w.rows), spawn=(w.spawn.x, w.spawn.y), exit=(w.exit.x, w.exit.y),
                 enemies=[Placed(t.kind, t.x, t.y) for t in w.enemies],
                 items=[Placed(t.kind, t.x, t.y) for t in w.items], theme=w.theme)


def _report(c: Candidate) -> ValidationReport:
    if c.source is not None:
        return ValidationReport(tuple(c.failures), level=c.source)
    return ValidationReport(tuple(c.failures), build=c.build_level if c.buildable() else None)
