"""How the next level's spec follows from how the last one went.

The policy is one small function, ``next_spec(previous_spec, stats) ->
LevelSpec``; a game replaces it by passing its own to
:class:`~engine.core.session.Session` (``difficulty_policy=...``).

The default keeps the player in the flow zone with one step at a time:

* died, or quit without finishing -> one difficulty step down: two fewer
  enemies, one more item;
* finished, but only after dying on it (``deaths`` counts every attempt) ->
  the same spec again: the level was at the edge of the player's skill, which
  is where flow is, so it is neither raised nor lowered.  Without this a
  player who died twice and then walked through the retry unscathed would be
  pushed *up*, since damage and turns describe the final attempt only;
* finished without dying, having lost less than a quarter of max HP, within
  three times par -> one step up: two more enemies, one item fewer, a
  slightly larger map;
* anything else -> the same spec again.

Every field is clamped to the spec's allowed ranges (``SPEC_RANGES``).

>>> easy = LevelStats(completed=True, deaths=0, turns=30, par_turns=25, damage_taken=2, max_hp=20)
>>> next_spec(DEFAULT_FIRST_SPEC, easy).difficulty
4
>>> next_spec(DEFAULT_FIRST_SPEC, LevelStats(completed=False, deaths=1, turns=9, par_turns=25,
...                                          damage_taken=20, max_hp=20)).enemies
2
>>> from dataclasses import replace
>>> next_spec(DEFAULT_FIRST_SPEC, replace(easy, deaths=1)) == DEFAULT_FIRST_SPEC
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from engine.core.level import SPEC_RANGES, LevelSpec

#: What a session asks for first unless told otherwise.
DEFAULT_FIRST_SPEC: Final = LevelSpec(width=40, height=24, difficulty=3, enemies=4, items=3, theme="crypt")


@dataclass(frozen=True, slots=True)
class LevelStats:
    """What the policy may look at about the last finished level (all attempts)."""

    completed: bool
    deaths: int
    turns: int
    par_turns: int
    damage_taken: int
    max_hp: int
    quit: bool = False
    fun: float | None = None

    @property
    def damage_share(self) -> float:
        """Damage taken over the final attempt, as a share of max HP."""
        return self.damage_taken / max(self.max_hp, 1)


DifficultyPolicy = Callable[[LevelSpec, "LevelStats | None"], LevelSpec]


def _clamp(name: str, value: int) -> int:
    lo, hi = SPEC_RANGES[name]
    return max(lo, min(hi, value))


def next_spec(previous_spec: LevelSpec, stats: LevelStats | None) -> LevelSpec:
    """The default policy (see the module docstring).  ``stats`` is ``None`` before any level ended."""
    if stats is None:
        return previous_spec
    if not stats.completed:
        step = -1
    elif stats.deaths > 0:  # got there in the end: the right challenge, keep it
        step = 0
    elif stats.damage_share < 0.25 and stats.turns <= 3 * max(stats.par_turns, 1):
        step = 1
    else:
        step = 0
    if step == 0:
        return previous_spec
    return LevelSpec(
        width=_clamp("width", previous_spec.width + 4 * max(step, 0)),
        height=_clamp("height", previous_spec.height + 2 * max(step, 0)),
        difficulty=_clamp("difficulty", previous_spec.difficulty + step),
        enemies=_clamp("enemies", previous_spec.enemies + 2 * step),
        items=_clamp("items", previous_spec.items - step),
        theme=previous_spec.theme,
    )
