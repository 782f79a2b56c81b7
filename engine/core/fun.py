"""Implicit fun score of a played level, from telemetry only.

The idea is *flow* (Csikszentmihalyi): play is most engaging when the
challenge matches the player's skill.  Too easy is boring, too hard is
frustrating.  We cannot ask the player, so we read signs from what they did:

* **challenge fit**: the peak danger of the last attempt (``tension = 1 -
  lowest HP / max HP``; dying is 1) scored by a bell curve centred on losing
  about half one's health: a close call one survives;
* **completion**: the level was finished (on any attempt);
* **pace**: turns taken against *par* (the critical path length, via tcod),
  best around twice par (the player looked around but was not lost);
* **exploration**: share of the reachable floor the player saw;
* **engagement**: distinct enemies the player fought, with diminishing returns;
* minus a penalty per **death**, and halved on an **early quit**.

Each part is reported in :attr:`FunScore.features`, not only the sum;
``docs/fun-score.md`` has the formula and the constants.

>>> fit = challenge_fit(0.5), challenge_fit(0.0), challenge_fit(1.0)
>>> [round(v, 3) for v in fit]
[1.0, 0.018, 0.018]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final


from engine.core.content import WALKABLE
from engine.core.level import Level
from engine.core.pathing import critical_path_length
from engine.core.telemetry import Death, Event, LevelEnd, LevelScored, LevelStart, Retry

#: Weights of the positive parts (they sum to 1).
WEIGHTS: Final[dict[str, float]] = {
    "completed": 0.25,
    "challenge_fit": 0.30,
    "pace": 0.15,
    "exploration": 0.15,
    "engagement": 0.15,
}
FLOW_TENSION: Final = 0.5  #: the danger level of a good close call
FLOW_WIDTH: Final = 0.25  #: how quickly fit falls off away from it
PACE_TARGET: Final = 2.0  #: turns / par that scores best
PACE_SPREAD: Final = 3.0  #: doublings away from the target at which pace reaches 0
ENGAGEMENT_SCALE: Final = 2.0  #: fights for ~63 % engagement
DEATH_PENALTY: Final = 0.10  #: per death, at most three counted
QUIT_FACTOR: Final = 0.5


@dataclass(frozen=True, slots=True)
class FunScore:
    """``score`` in [0, 1] and the named parts it was made of."""

    score: float
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"score": self.score, "features": dict(self.features)}


def challenge_fit(tension: float) -> float:
    """How well the peak danger matches the flow zone (1 at :data:`FLOW_TENSION`)."""
    return math.exp(-(((tension - FLOW_TENSION) / FLOW_WIDTH) ** 2))


def pace_score(time_ratio: float) -> float:
    """1 at :data:`PACE_TARGET` x par, falling linearly per doubling away from it."""
    if time_ratio <= 0:
        return 0.0
    return max(0.0, 1.0 - abs(math.log2(time_ratio / PACE_TARGET)) / PACE_SPREAD)


def fun_score(events: Iterable[Event], level: Level | None = None) -> FunScore:
    """Score one played level from its events (every attempt, in order).

    ``level`` is optional: when given, par is recomputed from it; otherwise
    the ``par_turns`` recorded in ``LevelStart`` is used.  Raises
    ``ValueError`` when the events hold no level start or several levels.

    A level with no ``LevelEnd`` (the game crashed or was closed mid-level)
    counts as quit early.
    """
    evs = [e for e in events if not isinstance(e, LevelScored)]
    starts = [e for e in evs if isinstance(e, LevelStart)]
    if not starts:
        raise ValueError("fun_score: no LevelStart event; pass every event of one played level")
    ids = {e.level_id for e in evs}
    if len(ids) > 1:
        raise ValueError(
            f"fun_score: events of {len(ids)} levels ({', '.join(sorted(ids)[:3])}...); "
            "split them first with engine.core.telemetry.events_by_level"
        )
    ends = [e for e in evs if isinstance(e, LevelEnd)]
    last_start = starts[-1]
    last_end = ends[-1] if ends and ends[-1].attempt == last_start.attempt else None

    if level is not None:
        par = critical_path_length(WALKABLE[level.grid], level.spawn, level.exit)
    else:
        par = last_start.par_turns
    par = max(par, 1)

    completed = any(e.outcome == "completed" for e in ends)
    deaths = sum(isinstance(e, Death) for e in evs)
    retries = max(sum(isinstance(e, Retry) for e in evs), len(starts) - 1)
    early_quit = (last_end is None or last_end.outcome == "quit") and not completed

    if last_end is not None:
        turns = last_end.turn
        tension = 1.0 if last_end.outcome == "died" else 1.0 - last_end.min_hp / max(last_end.max_hp, 1)
        exploration = last_end.explored_tiles / max(last_end.reachable_tiles, 1)
        engaged = last_end.enemies_engaged
    else:  # unfinished attempt: judge by what the events show
        last = [e for e in evs if e.turn >= 0]
        turns = last[-1].turn if last else 0
        tension, exploration, engaged = 0.0, 0.0, 0
    time_ratio = turns / par
    features = {
        "completed": float(completed),
        "challenge_fit": challenge_fit(tension),
        "pace": pace_score(time_ratio) if completed else 0.0,
        "exploration": min(1.0, exploration),
        "engagement": 1.0 - math.exp(-engaged / ENGAGEMENT_SCALE),
    }
    raw = sum(WEIGHTS[k] * v for k, v in features.items())
    raw -= DEATH_PENALTY * min(deaths, 3)
    if early_quit:
        raw *= QUIT_FACTOR
    score = min(1.0, max(0.0, raw))
    features.update(
        tension=tension,
        deaths=float(deaths),
        retries=float(retries),
        early_quit=float(early_quit),
        turns=float(turns),
        par_turns=float(par),
        time_ratio=time_ratio,
        enemies_engaged=float(engaged),
    )
    return FunScore(round(score, 6), {k: round(float(v), 6) for k, v in features.items()})


def scored_event(events: list[Event], fun: FunScore) -> LevelScored:
    """The ``LevelScored`` event for a level's events (ids taken from its last event)."""
    last = events[-1]
    return LevelScored(level_id=last.level_id, generation_id=last.generation_id, turn=last.turn,
                       fun=fun.score, features=dict(fun.features))


