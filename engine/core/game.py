"""The rules: one level, played a turn at a time, headless and deterministic.

Size: over 400 lines on purpose. The turn rules (player actions, items, enemy
behaviour, field of view, messages) are one state machine over one ``Game``;
split up, the order of events within a turn would be spread over modules.

A :class:`Game` owns the actors and items of one level.  Each call to
:meth:`Game.act` is one player action followed (if a turn passed) by every
enemy's action.  The same level, seed and actions always give the same
events, so bots make reproducible telemetry and tests can replay games.

What the renderer draws is plain attributes: ``grid``, ``player``,
``enemies`` (alive ones), ``items`` (still lying around), ``visible`` and
``explored`` (bool ``[y, x]``), ``messages``, ``status``, ``turn``.

>>> from engine.core.level import Level, rows_to_grid
>>> rows = ["#######", "#.....#", "#######"]
>>> level = Level(name="corridor", grid=rows_to_grid(rows), spawn=(1, 1), exit=(5, 1), theme="crypt")
>>> game = Game(level, seed=1)
>>> for _ in range(4):
...     _ = game.act(Move(1, 0))
>>> game.status, game.turn
(<GameStatus.WON: 'won'>, 4)
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.core import telemetry as ev
from engine.core.actions import Action, Move, Quit, Wait
from engine.core.content import ITEM_KINDS, WALKABLE, Behaviour
from engine.core.entities import Actor, GameStatus, Item, PlayerStats
from engine.core.errors import EngineError, LevelFormatError
from engine.core.fov import DEFAULT_FOV_RADIUS, field_of_view
from engine.core.level import Level
from engine.core.pathing import NEIGHBOURS, DistanceMaps, critical_path_length, step_toward
from engine.core.telemetry import TelemetrySink

log = logging.getLogger(__name__)

class ConfigValueError(EngineError, ValueError):
    """A rules preset has an unknown key or a value of the wrong type."""


#: Messages kept for the HUD.
MESSAGE_LOG_SIZE: Final = 50


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Tuning of the rules.  Every number a designer might want to turn is here."""

    player_hp: int = 20
    player_attack: int = 3
    fov_radius: int = DEFAULT_FOV_RADIUS
    chaser_memory: int = 20  #: turns a chaser keeps hunting after losing sight of the player
    guard_memory: int = 5  #: turns a guard keeps chasing before walking back to its post
    potion_heal: int = 8
    food_heal: int = 4
    scroll_attack: int = 1  #: a scroll of might adds this to the player's attack
    treasure_gold: int = 10
    regen_every: int = 10  #: the player heals 1 HP every this many turns (0 = never)
    naive: bool = False  #: recompute FOV and paths from scratch every time (benchmark baseline)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RulesConfig:
        """Build from a mapping (e.g. a YAML preset, :func:`engine.presets.load_rules`); unknown or ill-typed keys are a clear error.

        >>> RulesConfig.from_dict({"player_hp": 30}).player_hp
        30
        >>> RulesConfig.from_dict({"player_hpp": 30})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        engine.core.game.ConfigValueError: RulesConfig: unknown key 'player_hpp'; known: player_hp, ...
        """
        known = {f.name: f for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise ConfigValueError(f"RulesConfig: unknown key {key!r}; known: {', '.join(known)}")
            expected = bool if known[key].type in ("bool", bool) else int
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigValueError(f"RulesConfig.{key}: expected {expected.__name__}, got {value!r}")
        return cls(**dict(data))


#: What picking up an item does: ``effect(game) -> message``.  A game may add kinds
#: (see ``docs/embedding.md``); unknown kinds are simply collected.
ItemEffect = Callable[["Game"], str]


def _potion(game: Game) -> str:
    healed = game.heal(game.config.potion_heal)
    return f"You drink a potion and heal {healed} HP."


def _food(game: Game) -> str:
    healed = game.heal(game.config.food_heal)
    return f"You eat some food and heal {healed} HP."


def _scroll(game: Game) -> str:
    game.player.attack += game.config.scroll_attack
    return f"A scroll of might: your attack is now {game.player.attack}."


def _treasure(game: Game) -> str:
    game.stats.gold += game.config.treasure_gold
    return f"You pick up {game.config.treasure_gold} gold."


ITEM_EFFECTS: dict[str, ItemEffect] = {
    "potion": _potion,
    "food": _food,
    "scroll": _scroll,
    "treasure": _treasure,
}


def level_fingerprint(level: Level) -> str:
    """A short stable id for a level's content (used when no level id is given)."""
    return hashlib.blake2b(level.to_json(), digest_size=6).hexdigest()


class Game:
    """One attempt at one level.

    ``sink`` receives telemetry events (``LevelStart`` at once);
    ``generation_id`` is the generator's id of the call that made the level.
    """

    def __init__(
        self,
        level: Level,
        seed: int = 0,
        sink: TelemetrySink | None = None,
        generation_id: str | None = None,
        *,
        level_id: str | None = None,
        session_id: str | None = None,
        attempt: int = 1,
        config: RulesConfig | None = None,
    ) -> None:
        self.level = level
        self.seed = seed
        self.sink = sink
        self.generation_id = generation_id
        self.level_id = level_id or level_fingerprint(level)
        self.session_id = session_id
        self.attempt = attempt
        self.config = config or RulesConfig()
        self.rng = np.random.default_rng(seed)

        self.grid: NDArray[np.uint8] = level.grid
        h, w = self.grid.shape
        self.walkable: NDArray[np.bool_] = WALKABLE[self.grid]
        self.transparent = self.walkable  # walls block sight; doors are open doorways
        for name, (x, y) in (("spawn", level.spawn), ("exit", level.exit)):
            if not (0 <= x < w and 0 <= y < h) or not self.walkable[y, x]:
                raise LevelFormatError(f"$.{name}", f"{name} ({x}, {y}) is not on a floor tile of the level")

        cfg = self.config
        self.player = Actor("player", *level.spawn, cfg.player_hp, cfg.player_hp, cfg.player_attack, ident=-1)
        self.enemies: list[Actor] = []
        for i, p in enumerate(level.enemies):
            try:
                self.enemies.append(Actor.enemy(p.kind, p.x, p.y, ident=i))
            except ValueError as exc:
                raise LevelFormatError(f"$.enemies[{i}].kind", str(exc)) from None
        self.items: list[Item] = []
        for i, p in enumerate(level.items):
            if p.kind not in ITEM_KINDS and p.kind not in ITEM_EFFECTS:
                raise LevelFormatError(f"$.items[{i}].kind", f"unknown item kind {p.kind!r}; known: {', '.join(ITEM_KINDS)}")
            self.items.append(Item(p.kind, p.x, p.y))

        self.stats = PlayerStats(min_hp=cfg.player_hp)
        self.status = GameStatus.PLAYING
        self.turn = 0
        self.messages: deque[str] = deque(maxlen=MESSAGE_LOG_SIZE)
        self.visible: NDArray[np.bool_] = np.zeros((h, w), dtype=bool)
        self.explored: NDArray[np.bool_] = np.zeros((h, w), dtype=bool)
        self._fov_at: tuple[int, int] | None = None
        self._paths = DistanceMaps(self.walkable, capacity=0 if cfg.naive else 64)
        self._occupied: dict[tuple[int, int], Actor] = {e.pos: e for e in self.enemies}
        self.par_turns = critical_path_length(self.walkable, level.spawn, level.exit)
        self.reachable_tiles = int(np.count_nonzero(self._paths.to(level.spawn) < np.iinfo(np.int32).max))
        self._update_fov()

        self._emit(ev.LevelStart, session_id=session_id, attempt=attempt, seed=seed, name=level.name,
                   theme=level.theme, width=w, height=h, spawn_x=level.spawn[0], spawn_y=level.spawn[1],
                   exit_x=level.exit[0], exit_y=level.exit[1], enemies=len(self.enemies),
                   items=len(self.items), par_turns=self.par_turns, reachable_tiles=self.reachable_tiles,
                   player_hp=self.player.hp)
        self.say(f"You enter {level.name or 'the level'}.")

    # ------------------------------------------------------------------ state

    @property
    def exit(self) -> tuple[int, int]:
        return self.level.exit

    @property
    def finished(self) -> bool:
        return self.status is not GameStatus.PLAYING

    def enemy_at(self, pos: tuple[int, int]) -> Actor | None:
        return self._occupied.get(pos)

    def item_at(self, pos: tuple[int, int]) -> Item | None:
        return next((it for it in self.items if it.pos == pos), None)

    def explored_tiles(self) -> int:
        return int(np.count_nonzero(self.explored & self.walkable))

    def say(self, text: str) -> None:
        self.messages.append(text)

    def heal(self, amount: int) -> int:
        """Heal the player up to max HP; returns the HP actually gained."""
        before = self.player.hp
        self.player.hp = min(self.player.max_hp, self.player.hp + amount)
        return self.player.hp - before

    # ------------------------------------------------------------------ turns

    def act(self, action: Action) -> bool:
        """Do one player action.  Returns whether a turn passed.

        Walking into a wall costs no turn; actions after the level ended do nothing.
        """
        if self.finished:
            return False
        if isinstance(action, Quit):
            self._emit(ev.Quit, reason=action.reason)
            self.say("You leave the level.")
            self._finish(GameStatus.QUIT)
            return True
        if isinstance(action, Wait):
            self._emit(ev.Waited)
        elif isinstance(action, Move):
            if not self._player_move(action):
                return False
            if self.finished:  # reached the exit
                return True
        else:
            raise TypeError(f"not an action: {action!r}; use Move, Wait or Quit from engine.core.actions")
        self._update_fov()  # enemies see where the player is now
        self._enemies_act()
        self.turn += 1
        if not self.player.alive:
            self._finish(GameStatus.DEAD)
            return True
        if self.config.regen_every and self.turn % self.config.regen_every == 0:
            self.heal(1)
        self._update_fov()
        return True

    def _player_move(self, move: Move) -> bool:
        p = self.player
        target = (p.x + move.dx, p.y + move.dy)
        tx, ty = target
        enemy = self._occupied.get(target)
        if enemy is not None:
            self._player_attacks(enemy)
            return True
        h, w = self.grid.shape
        if not (0 <= tx < w and 0 <= ty < h) or not self.walkable[ty, tx]:
            self.say("A wall blocks the way.")
            return False
        p.x, p.y = tx, ty
        self._emit(ev.Move, x=tx, y=ty)
        item = self.item_at(target)
        if item is not None:
            self.items.remove(item)
            self.stats.items += 1
            self._emit(ev.ItemPickup, kind=item.kind, x=tx, y=ty)
            effect = ITEM_EFFECTS.get(item.kind)
            self.say(effect(self) if effect else f"You pick up a {item.kind}.")
        if target == self.level.exit:
            self.turn += 1
            self._update_fov()
            self.say("You reach the exit.")
            self._finish(GameStatus.WON)
        return True

    def _player_attacks(self, enemy: Actor) -> None:
        damage = self.player.attack
        enemy.hp -= damage
        self.stats.damage_dealt += damage
        self.stats.engaged.add(enemy.ident)
        self._emit(ev.Attack, attacker="player", target=enemy.kind, x=enemy.x, y=enemy.y, damage=damage)
        killed = not enemy.alive
        self._emit(ev.DamageDealt, enemy=enemy.ident, kind=enemy.kind, amount=damage,
                   enemy_hp=max(enemy.hp, 0), killed=killed)
        if killed:
            self.stats.kills += 1
            self.enemies.remove(enemy)
            del self._occupied[enemy.pos]
            self.say(f"You slay the {enemy.kind}.")
        else:
            self.say(f"You hit the {enemy.kind} for {damage}.")
            # being hit wakes anything up
            enemy.alert = max(enemy.alert, self._memory(enemy))
            enemy.target = self.player.pos

    # ---------------------------------------------------------------- enemies

    def _memory(self, enemy: Actor) -> int:
        return self.config.guard_memory if enemy.behaviour is Behaviour.GUARD else self.config.chaser_memory

    def sees_player(self, enemy: Actor) -> bool:
        """Whether ``enemy`` sees the player now (symmetric FOV, same radius)."""
        if self.config.naive:
            own = field_of_view(self.transparent, enemy.pos, self.config.fov_radius)
            return bool(own[self.player.y, self.player.x])
        return bool(self.visible[enemy.y, enemy.x])

    def _enemies_act(self) -> None:
        for enemy in list(self.enemies):
            if not self.player.alive:
                return
            if not enemy.alive:
                continue
            adjacent = max(abs(enemy.x - self.player.x), abs(enemy.y - self.player.y)) == 1
            if enemy.behaviour is Behaviour.WANDERER:
                if adjacent:
                    self._enemy_attacks(enemy)
                else:
                    self._wander(enemy)
                continue
            if self.sees_player(enemy):
                enemy.alert = self._memory(enemy)
                enemy.target = self.player.pos
                if adjacent:
                    self._enemy_attacks(enemy)
                else:
                    self._step(enemy, self.player.pos)
            elif enemy.alert > 0:
                enemy.alert -= 1
                # a chaser tracks the player while it remembers them; a guard goes where it last saw them
                goal = self.player.pos if enemy.behaviour is Behaviour.CHASER else enemy.target
                if adjacent:
                    self._enemy_attacks(enemy)
                elif goal is not None:
                    self._step(enemy, goal)
            elif enemy.behaviour is Behaviour.GUARD and enemy.pos != enemy.home:
                self._step(enemy, enemy.home)

    def _step(self, enemy: Actor, goal: tuple[int, int]) -> None:
        blocked = self._occupied.keys() | {self.player.pos}
        nxt = step_toward(self._paths.to(goal), enemy.pos, blocked)
        if nxt is not None:
            self._move_enemy(enemy, nxt)

    def _wander(self, enemy: Actor) -> None:
        h, w = self.grid.shape
        options = []
        for dx, dy in NEIGHBOURS:
            nx, ny = enemy.x + dx, enemy.y + dy
            if (0 <= nx < w and 0 <= ny < h and self.walkable[ny, nx]
                    and (nx, ny) not in self._occupied and (nx, ny) != self.player.pos):
                options.append((nx, ny))
        # a wanderer stays put one time in three
        pick = int(self.rng.integers(len(options) + len(options) // 2 + 1))
        if pick < len(options):
            self._move_enemy(enemy, options[pick])

    def _move_enemy(self, enemy: Actor, pos: tuple[int, int]) -> None:
        del self._occupied[enemy.pos]
        enemy.x, enemy.y = pos
        self._occupied[pos] = enemy

    def _enemy_attacks(self, enemy: Actor) -> None:
        damage = enemy.attack
        p = self.player
        p.hp -= damage
        self.stats.damage_taken += damage
        self.stats.min_hp = min(self.stats.min_hp, max(p.hp, 0))
        self.stats.engaged.add(enemy.ident)
        self._emit(ev.Attack, attacker=enemy.kind, target="player", x=p.x, y=p.y, damage=damage)
        self._emit(ev.DamageTaken, enemy=enemy.ident, kind=enemy.kind, amount=damage, hp=max(p.hp, 0))
        self.say(f"The {enemy.kind} hits you for {damage}.")
        if not p.alive:
            self._emit(ev.Death, cause=enemy.kind, x=p.x, y=p.y)
            self.say(f"You were killed by a {enemy.kind}.")

    # ------------------------------------------------------------------ misc

    def _update_fov(self) -> None:
        pos = self.player.pos
        if pos == self._fov_at and not self.config.naive:
            return
        self.visible = field_of_view(self.transparent, pos, self.config.fov_radius)
        self.explored |= self.visible
        self._fov_at = pos

    def _finish(self, status: GameStatus) -> None:
        self.status = status
        outcome = {GameStatus.WON: "completed", GameStatus.DEAD: "died", GameStatus.QUIT: "quit"}[status]
        s = self.stats
        self._emit(ev.LevelEnd, outcome=outcome, attempt=self.attempt, hp=max(self.player.hp, 0),
                   max_hp=self.player.max_hp, min_hp=s.min_hp, explored_tiles=self.explored_tiles(),
                   reachable_tiles=self.reachable_tiles, kills=s.kills, enemies_total=len(self.level.enemies),
                   enemies_engaged=len(s.engaged), damage_dealt=s.damage_dealt, damage_taken=s.damage_taken,
                   gold=s.gold, items_picked=s.items)
        if self.sink is not None:
            self.sink.flush()

    def _emit(self, cls: type[ev.Event], **fields: object) -> None:
        if self.sink is not None:
            self.sink.emit(cls(level_id=self.level_id, generation_id=self.generation_id, turn=self.turn, **fields))
