"""A play session: a run of levels for one player, fetched ahead of time.

:class:`Session` asks a :class:`~engine.core.source.LevelSource` for the next
level on a background thread *while the current one is played*, so a level
transition does not wait on a slow generator.  If the source fails, the
error comes back as a :class:`~engine.core.errors.LevelSourceError` from
:meth:`Session.next_game`, which a game shows instead of freezing (and may
call again: the request is retried).  :meth:`Session.level_ready` tells a
window whether :meth:`Session.next_game` would block.

Difficulty follows the player through a replaceable policy
(:mod:`engine.core.difficulty`).  Because the next level is requested when
the current one *starts*, the policy sees the stats of the level before the
current one: adaptation lags one level, the price of never waiting.

Typical use (a bot stands in for the player)::

    session = Session(source, sink, session_id="s1", seed=7)
    for _ in range(3):
        game = session.next_game()
        run_bot(game, make_bot("explorer"))      # or a window feeding game.act()
        report = session.end_game(game)
    session.close()
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from engine.core import telemetry as ev
from engine.core.actions import Quit
from engine.core.bots import Bot, make_bot, run_bot
from engine.core.difficulty import DEFAULT_FIRST_SPEC, DifficultyPolicy, LevelStats, next_spec
from engine.core.entities import GameStatus
from engine.core.errors import EngineError, LevelSourceError
from engine.core.fun import FunScore, fun_score, scored_event
from engine.core.game import Game, RulesConfig
from engine.core.level import Level, LevelSpec
from engine.core.source import LevelSource, SourcedLevel
from engine.core.telemetry import MemorySink, TeeSink, TelemetrySink

log = logging.getLogger(__name__)


class LevelNotReady(LevelSourceError):
    """``next_game(timeout=...)`` ran out of time; the level is still being made (ask again later)."""


@dataclass(frozen=True, slots=True)
class LevelReport:
    """How one level of the session went.  ``fun`` is set once the level is final."""

    index: int
    level_id: str
    generation_id: str | None
    backend: str
    spec: LevelSpec
    outcome: str  #: "completed", "died" or "quit" (of the last attempt)
    attempt: int
    turns: int
    final: bool  #: no retry follows
    wait_ms: float  #: how long ``next_game`` blocked before this level (0 for retries)
    fun: FunScore | None = None
    stats: LevelStats | None = None


@dataclass(slots=True)
class _Pending:
    index: int
    spec: LevelSpec
    seed: int
    future: cf.Future[SourcedLevel]


@dataclass(slots=True)
class _Current:
    index: int
    spec: LevelSpec
    sourced: SourcedLevel
    level_id: str
    wait_ms: float
    memory: MemorySink = field(default_factory=MemorySink)
    attempt: int = 1
    deaths: int = 0
    game: Game | None = None
    retry_next: bool = False


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed for a sub-task (level ``i``, attempt ``j``) of a seeded run."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


class Session:
    """A run of levels for one player.  See the module docstring."""

    def __init__(
        self,
        source: LevelSource,
        sink: TelemetrySink | None = None,
        *,
        session_id: str | None = None,
        seed: int = 0,
        first_spec: LevelSpec = DEFAULT_FIRST_SPEC,
        difficulty_policy: DifficultyPolicy = next_spec,
        retry_after_death: bool = False,
        max_retries: int = 2,
        rules: RulesConfig | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Session seed must be a non-negative int, got {seed!r}")
        self.source = source
        self.sink = sink
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.seed = seed
        self.first_spec = first_spec
        self.difficulty_policy = difficulty_policy
        self.retry_after_death = retry_after_death
        self.max_retries = max_retries
        self.rules = rules
        self.reports: list[LevelReport] = []
        self.transition_waits_ms: list[float] = []
        self.turns_played = 0
        self.play_seconds = 0.0
        self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="forge-level-prefetch")
        self._pending: _Pending | None = None
        self._current: _Current | None = None
        self._next_index = 0
        self._last_stats: LevelStats | None = None
        self._started = False
        self._closed = False

    @property
    def current_level(self) -> SourcedLevel | None:
        """The level being played (with its generation id and backend, for a HUD)."""
        return self._current.sourced if self._current is not None else None

    @property
    def depth(self) -> int:
        """1-based number of the level being played (0 before the first)."""
        return self._current.index + 1 if self._current is not None else 0

    # ----------------------------------------------------------- prefetching

    def start(self) -> None:
        """Tell the source a session begins and start making the first level (both in the background)."""
        if self._started:
            return
        self._started = True
        start = getattr(self.source, "start_session", None)
        if callable(start):
            self._executor.submit(self._start_source, start)
        self._request(self.first_spec)

    def _start_source(self, start) -> None:
        try:
            start(self.session_id)
        except Exception:  # the next get_level will show whether the source is usable
            log.exception("level source %s failed to start session %s", type(self.source).__name__, self.session_id)

    def _request(self, spec: LevelSpec) -> None:
        index = self._next_index
        seed = derive_seed(self.seed, index)
        self._pending = _Pending(index, spec, seed, self._executor.submit(self._fetch, spec, seed))

    def _fetch(self, spec: LevelSpec, seed: int) -> SourcedLevel:
        got = self.source.get_level(spec, seed=seed)
        if isinstance(got, Level):  # be lenient with simple sources
            got = SourcedLevel(got)
        if not isinstance(got, SourcedLevel):
            raise TypeError(f"get_level returned {type(got).__name__}, expected SourcedLevel")
        return got

    def level_ready(self) -> bool:
        """Whether :meth:`next_game` would return (or raise) without waiting."""
        if self._current is not None and self._current.retry_next:
            return True
        if not self._started:
            self.start()
        return self._pending is not None and self._pending.future.done()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until the next level is ready (or failed), at most ``timeout`` s; returns :meth:`level_ready`."""
        if not self.level_ready() and self._pending is not None:
            cf.wait([self._pending.future], timeout=timeout)
        return self.level_ready()

    # ---------------------------------------------------------------- levels

    def next_game(self, timeout: float | None = None) -> Game:
        """The next level to play (or the same one again after a death, with retries on).

        Blocks until the prefetched level is ready, at most ``timeout`` seconds
        (then :class:`LevelNotReady`).  A failing source raises
        :class:`LevelSourceError` and the request is made again in the background.
        """
        if self._closed:
            raise LevelSourceError("the session is closed; start a new Session")
        cur = self._current
        if cur is not None and cur.game is not None and not cur.game.finished:
            raise LevelSourceError(
                f"level {cur.index} is still being played; finish it (or act(Quit())) and call end_game first"
            )
        if cur is not None and cur.retry_next:
            cur.retry_next = False
            cur.attempt += 1
            sink = self._level_sink(cur)
            sink.emit(ev.Retry(level_id=cur.level_id, generation_id=cur.sourced.generation_id, turn=0,
                               attempt=cur.attempt))
            cur.game = self._make_game(cur, sink)
            return cur.game
        self.start()
        pending = self._pending
        assert pending is not None
        t0 = time.perf_counter()
        try:
            sourced = pending.future.result(timeout=timeout)
        except cf.TimeoutError:
            raise LevelNotReady(
                f"level {pending.index} (spec {pending.spec.to_json().decode()}) is not ready after {timeout} s; "
                "the source is still working: show a waiting screen and ask again"
            ) from None
        except Exception as exc:
            self._request(pending.spec)  # try again in the background
            raise LevelSourceError(
                f"level source {type(self.source).__name__} failed to make level {pending.index} "
                f"(spec {pending.spec.to_json().decode()}): {type(exc).__name__}: {exc}. "
                "The request is being retried; call next_game() again, or switch to another source."
            ) from exc
        wait_ms = (time.perf_counter() - t0) * 1000.0
        self.transition_waits_ms.append(wait_ms)
        self._next_index = pending.index + 1
        cur = _Current(pending.index, pending.spec, sourced, f"{self.session_id}/{pending.index}", wait_ms)
        self._current = cur
        # the next level is made while this one is played (the policy sees the last *finished* level)
        self._request(self.difficulty_policy(pending.spec, self._last_stats))
        try:
            cur.game = self._make_game(cur, self._level_sink(cur))
        except EngineError as exc:  # e.g. an enemy kind the rules do not know
            self._current = None
            raise LevelSourceError(
                f"level source {type(self.source).__name__} gave level {cur.index} that cannot be played: {exc}. "
                "It is skipped; call next_game() for the next one."
            ) from exc
        return cur.game

    def _level_sink(self, cur: _Current) -> TelemetrySink:
        return TeeSink(cur.memory, self.sink) if self.sink is not None else cur.memory

    def _make_game(self, cur: _Current, sink: TelemetrySink) -> Game:
        return Game(cur.sourced.level, derive_seed(self.seed, cur.index, cur.attempt), sink,
                    cur.sourced.generation_id, level_id=cur.level_id, session_id=self.session_id,
                    attempt=cur.attempt, config=self.rules)

    def end_game(self, game: Game) -> LevelReport:
        """Record a finished attempt; when the level is final, score it and emit ``LevelScored``."""
        cur = self._current
        if cur is None or game is not cur.game:
            raise LevelSourceError("end_game: this game is not the session's current level")
        if not game.finished:
            raise LevelSourceError("end_game: the level is still being played; act(Quit()) to abandon it")
        died = game.status is GameStatus.DEAD
        cur.deaths += died
        will_retry = died and self.retry_after_death and cur.attempt <= self.max_retries and not self._closed
        outcome = {GameStatus.WON: "completed", GameStatus.DEAD: "died", GameStatus.QUIT: "quit"}[game.status]
        fun = stats = None
        if will_retry:
            cur.retry_next = True
        else:
            fun = fun_score(cur.memory.events, cur.sourced.level)
            scored = scored_event(cur.memory.events, fun)
            if self.sink is not None:
                self.sink.emit(scored)
                self.sink.flush()
            stats = LevelStats(
                completed=game.status is GameStatus.WON, deaths=cur.deaths, turns=game.turn,
                par_turns=game.par_turns, damage_taken=game.stats.damage_taken, max_hp=game.player.max_hp,
                quit=game.status is GameStatus.QUIT, fun=fun.score,
            )
            self._last_stats = stats
        report = LevelReport(
            index=cur.index, level_id=cur.level_id, generation_id=cur.sourced.generation_id,
            backend=cur.sourced.backend, spec=cur.spec, outcome=outcome, attempt=cur.attempt, turns=game.turn,
            final=not will_retry, wait_ms=cur.wait_ms if cur.attempt == 1 else 0.0, fun=fun, stats=stats,
        )
        if report.final:
            self.reports.append(report)
        return report

    # --------------------------------------------------------------- helpers

    def play(self, bot: str | Bot, levels: int, *, max_turns: int | None = None) -> list[LevelReport]:
        """Let a bot play ``levels`` levels (retries included in each); returns their final reports."""
        finals: list[LevelReport] = []
        while len(finals) < levels:
            game = self.next_game()
            assert self._current is not None
            player = make_bot(bot, derive_seed(self.seed, self._current.index, game.attempt, 1)) if isinstance(bot, str) else bot
            t0 = time.perf_counter()
            run_bot(game, player, max_turns)
            self.play_seconds += time.perf_counter() - t0
            self.turns_played += game.turn
            report = self.end_game(game)
            if report.final:
                finals.append(report)
        return finals

    def close(self) -> None:
        """Abandon an unfinished level (recorded as a quit), flush telemetry, stop prefetching.

        The sink is flushed, not closed: whoever made it closes it.
        """
        if self._closed:
            return
        cur = self._current
        self._closed = True
        if cur is not None and cur.game is not None and not cur.game.finished:
            cur.game.act(Quit("session closed"))
            self.end_game(cur.game)
        if self.sink is not None:
            self.sink.flush()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
