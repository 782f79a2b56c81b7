"""Bot players: seeded policies on tcod pathfinding that play a :class:`Game`.

They make simulated telemetry for tests, the demo and training data.

* ``explorer`` looks around until the map holds no more frontier, fights what
  it meets, picks up what it sees, then takes the exit.
* ``speedrunner`` knows the terrain and runs the shortest path to the exit,
  attacking only what stands in its way.
* ``cautious`` heads for the exit once it has seen it, grabs items near its
  way, keeps its distance from enemies, rests when hurt and flees when losing.

Bots see what a player sees (``visible`` / ``explored``), except the
speedrunner, which knows the layout (it plays the level "for the record").

>>> from engine.core.level import Level, rows_to_grid
>>> rows = ["########", "#......#", "#......#", "########"]
>>> level = Level(name="room", grid=rows_to_grid(rows), spawn=(1, 1), exit=(6, 2), theme="crypt")
>>> out = play_level(level, "speedrunner", seed=3)
>>> out.completed, out.turns
(True, 5)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar, Final

import numpy as np
import scipy.ndimage
from numpy.typing import NDArray

from engine.core.actions import Action, Move, Quit, Wait
from engine.core.entities import Actor, GameStatus
from engine.core.fun import FunScore, fun_score, scored_event
from engine.core.game import Game, RulesConfig
from engine.core.level import Level
from engine.core.pathing import NEIGHBOURS, UNREACHABLE, DistanceMaps, distance_map, path_from_map
from engine.core.telemetry import Event, MemorySink, TeeSink, TelemetrySink

log = logging.getLogger(__name__)

_EIGHT: Final = np.ones((3, 3), dtype=bool)


class Bot:
    """Base policy: ``act(game) -> Action``.  Subclasses set ``name`` and override ``act``."""

    name: ClassVar[str] = "bot"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self._plan: tuple[NDArray[np.int16], tuple[int, tuple[int, int]], NDArray[np.int32]] | None = None

    def act(self, game: Game) -> Action:
        raise NotImplementedError

    # -- helpers shared by the policies ------------------------------------

    @staticmethod
    def step_to(game: Game, nxt: tuple[int, int]) -> Move:
        return Move(nxt[0] - game.player.x, nxt[1] - game.player.y)

    @staticmethod
    def seen_enemies(game: Game) -> list[Actor]:
        return [e for e in game.enemies if game.visible[e.y, e.x]]

    @staticmethod
    def adjacent_enemies(game: Game) -> list[Actor]:
        px, py = game.player.pos
        return [e for e in game.enemies if max(abs(e.x - px), abs(e.y - py)) == 1]

    def known_cost(self, game: Game, danger: list[Actor] | None = None, *, to_exit: bool = False) -> NDArray[np.int16]:
        """Path cost over tiles the player has seen; tiles near ``danger`` cost more.

        Unless ``to_exit``, the exit is blocked: stepping on it would end the level.
        """
        cost = (game.explored & game.walkable).astype(np.int16)
        if not to_exit:
            cost[game.exit[1], game.exit[0]] = 0
        if danger:
            h, w = cost.shape
            for e in danger:
                y0, y1, x0, x1 = max(e.y - 2, 0), min(e.y + 3, h), max(e.x - 2, 0), min(e.x + 3, w)
                cost[y0:y1, x0:x1] *= 8
        return cost

    def route(self, game: Game, goals: list[tuple[int, int]], cost: NDArray[np.int16]) -> Move | None:
        """First step of the cheapest path to the nearest of ``goals`` (``None`` if none is reachable).

        One Dijkstra from the player per decision (kept while ``cost`` is the
        same array) answers this for every goal set the policy tries in turn.
        """
        if self._plan is None or self._plan[0] is not cost or self._plan[1] != (game.turn, game.player.pos):
            start_cost = cost.copy()
            start_cost[game.player.y, game.player.x] = max(int(start_cost[game.player.y, game.player.x]), 1)
            self._plan = (cost, (game.turn, game.player.pos), distance_map(game.walkable, [game.player.pos], start_cost))
        dist = self._plan[2]
        best, best_d = None, UNREACHABLE
        for x, y in goals:
            d = int(dist[y, x])
            if 0 < d < best_d:
                best, best_d = (x, y), d
        if best is None:
            return None
        path = path_from_map(dist, best)  # goal -> ... -> player
        return self.step_to(game, path[-2]) if len(path) >= 2 else None

    @staticmethod
    def frontier(game: Game) -> list[tuple[int, int]]:
        """Seen floor tiles next to unseen ones: where exploring continues."""
        unknown_near = scipy.ndimage.binary_dilation(~game.explored, structure=_EIGHT)
        ys, xs = np.nonzero(game.explored & game.walkable & unknown_near)
        return list(zip(xs.tolist(), ys.tolist(), strict=True))

    @staticmethod
    def known_items(game: Game, kinds: tuple[str, ...] | None = None) -> list[tuple[int, int]]:
        return [it.pos for it in game.items if game.explored[it.y, it.x] and (kinds is None or it.kind in kinds)]

    @staticmethod
    def exit_known(game: Game) -> bool:
        x, y = game.exit
        return bool(game.explored[y, x])

    @staticmethod
    def weakest(enemies: list[Actor]) -> Actor:
        return min(enemies, key=lambda e: (e.hp, e.ident))


class ExplorerBot(Bot):
    """Sees everything it can, fights what it meets, then leaves."""

    name = "explorer"

    def act(self, game: Game) -> Action:
        p = game.player
        adjacent = self.adjacent_enemies(game)
        if adjacent:
            return self.step_to(game, self.weakest(adjacent).pos)
        cost = self.known_cost(game)
        if p.hp <= p.max_hp * 0.4:
            step = self.route(game, self.known_items(game, ("potion", "food")), cost)
            if step:
                return step
        seen = [e for e in self.seen_enemies(game)
                if max(abs(e.x - p.x), abs(e.y - p.y)) <= 4 and p.hp > p.max_hp * 0.3]
        for goals in ([e.pos for e in seen], self.known_items(game), self.frontier(game)):
            step = self.route(game, goals, cost)
            if step:
                return step
        return self.route(game, [game.exit], self.known_cost(game, to_exit=True)) or Wait()


class SpeedrunnerBot(Bot):
    """Straight to the exit on the shortest path over the whole map."""

    name = "speedrunner"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._maps: DistanceMaps | None = None
        self._level: Level | None = None

    def act(self, game: Game) -> Action:
        if self._maps is None or self._level is not game.level:
            self._maps, self._level = DistanceMaps(game.walkable, capacity=1), game.level
        dist = self._maps.to(game.exit)
        path = path_from_map(dist, game.player.pos)
        if len(path) < 2:
            return Wait()
        nxt = path[1]
        # an enemy on the way is attacked by stepping into it; a wall of enemies is waited out
        return self.step_to(game, nxt)


class CautiousBot(Bot):
    """Exit first, safety always: avoids enemies, rests when hurt, flees when losing."""

    name = "cautious"
    rest_below: ClassVar[float] = 0.5
    rest_until: ClassVar[float] = 0.8
    flee_below: ClassVar[float] = 0.3

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._resting = False

    def act(self, game: Game) -> Action:
        p = game.player
        seen = self.seen_enemies(game)
        adjacent = self.adjacent_enemies(game)
        if adjacent:
            if p.hp > p.max_hp * self.flee_below:
                return self.step_to(game, self.weakest(adjacent).pos)
            flee = self._flee(game, seen or adjacent)
            return flee or self.step_to(game, self.weakest(adjacent).pos)
        if p.hp <= p.max_hp * self.rest_below and not seen:
            self._resting = True
        if self._resting:
            if p.hp >= p.max_hp * self.rest_until or seen:
                self._resting = False
            else:
                return Wait()
        cost = self.known_cost(game, danger=seen)
        if p.hp < p.max_hp:
            step = self.route(game, self.known_items(game, ("potion", "food")), cost)
            if step:
                return step
        near_items = [pos for pos in self.known_items(game)
                      if max(abs(pos[0] - p.x), abs(pos[1] - p.y)) <= 6]
        step = self.route(game, near_items, cost)
        if step is None and self.exit_known(game):
            step = self.route(game, [game.exit], self.known_cost(game, danger=seen, to_exit=True))
        return step or self.route(game, self.frontier(game), cost) or Wait()

    def _flee(self, game: Game, danger: list[Actor]) -> Move | None:
        dist = distance_map(game.walkable, [e.pos for e in danger])
        px, py = game.player.pos
        best, best_d = None, int(dist[py, px])
        h, w = dist.shape
        for dx, dy in NEIGHBOURS:
            nx, ny = px + dx, py + dy
            if 0 <= nx < w and 0 <= ny < h and game.walkable[ny, nx] and game.enemy_at((nx, ny)) is None:
                d = int(dist[ny, nx])
                if best_d < d < UNREACHABLE:
                    best, best_d = (nx, ny), d
        return self.step_to(game, best) if best else None


BOTS: dict[str, type[Bot]] = {b.name: b for b in (ExplorerBot, SpeedrunnerBot, CautiousBot)}


def make_bot(name: str, seed: int = 0) -> Bot:
    try:
        return BOTS[name](seed)
    except KeyError:
        raise ValueError(f"unknown bot {name!r}; choose one of {', '.join(BOTS)}") from None


def default_max_turns(game: Game) -> int:
    """A generous turn limit: enough to see every tile a few times over."""
    return min(5000, 100 + 6 * game.reachable_tiles)


@dataclass(frozen=True, slots=True)
class PlayOutcome:
    """What happened when a bot played one attempt at a level."""

    completed: bool
    died: bool
    turns: int
    fun: FunScore
    events: list[Event] = field(default_factory=list)
    status: str = "playing"


def run_bot(game: Game, bot: Bot, max_turns: int | None = None) -> Game:
    """Let ``bot`` play ``game`` until it ends or ``max_turns`` pass (then it quits)."""
    limit = default_max_turns(game) if max_turns is None else max_turns
    idle = 0
    while not game.finished:
        if game.turn >= limit or idle > 50:
            game.act(Quit("max_turns" if game.turn >= limit else "stuck"))
            break
        idle = 0 if game.act(bot.act(game)) else idle + 1
    return game


def play_level(
    level: Level,
    bot: str | Bot = "explorer",
    *,
    seed: int = 0,
    max_turns: int | None = None,
    sink: TelemetrySink | None = None,
    generation_id: str | None = None,
    level_id: str | None = None,
    config: RulesConfig | None = None,
) -> PlayOutcome:
    """Play one level with a bot and score it.  Events go to ``sink`` too, ending with ``LevelScored``."""
    player = make_bot(bot, seed) if isinstance(bot, str) else bot
    memory = MemorySink()
    game = Game(level, seed, TeeSink(memory, sink) if sink is not None else memory,
                generation_id, level_id=level_id, config=config)
    run_bot(game, player, max_turns)
    fun = fun_score(memory.events, level)
    scored = scored_event(memory.events, fun)
    if sink is not None:
        sink.emit(scored)
        sink.flush()
    return PlayOutcome(
        completed=game.status is GameStatus.WON,
        died=game.status is GameStatus.DEAD,
        turns=game.turn,
        fun=fun,
        events=[*memory.events, scored],
        status=str(game.status),
    )
