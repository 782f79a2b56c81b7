"""Session: prefetch hides a slow source, failures are clear errors, retries and difficulty adapt."""

from __future__ import annotations

import pytest

from engine.core.actions import Move
from engine.core.bots import make_bot, run_bot
from engine.core.difficulty import DEFAULT_FIRST_SPEC
from engine.core.errors import LevelSourceError
from engine.core.session import LevelNotReady, Session
from engine.core.telemetry import LevelScored, MemorySink, Retry, events_by_level


def test_next_level_is_made_while_the_current_one_is_played(ascii_source):
    source = ascii_source(gate=True)
    session = Session(source, MemorySink(), session_id="s", seed=1)
    source.release(0)
    game = session.next_game()
    assert source.wait_called(1)  # level 1 was requested as soon as level 0 began
    assert not session.level_ready()  # ...and is still being "generated"
    source.release(1)  # the generator finishes while the player is busy
    run_bot(game, make_bot("explorer"))
    session.end_game(game)
    assert session.wait_until_ready(30)  # a sync with the worker thread, not a timing
    assert session.transition_waits_ms and len(source.requests) == 2
    game2 = session.next_game()
    assert game2.level_id == "s/1" and game2.generation_id == "gen-1"
    assert session.depth == 2 and session.current_level.backend == "ascii"
    assert source.sessions == ["s"]
    session.close()


def test_a_slow_source_is_reported_not_ready_instead_of_freezing(ascii_source):
    source = ascii_source(gate=True)
    session = Session(source, session_id="s")
    with pytest.raises(LevelNotReady, match="not ready"):
        session.next_game(timeout=0.05)
    source.release(0)
    assert session.next_game().level_id == "s/0"
    source.release(1)
    session.close()


def test_a_failing_source_gives_a_clear_error_and_is_retried(ascii_source):
    source = ascii_source(fail_times=1)
    session = Session(source, session_id="s")
    with pytest.raises(LevelSourceError, match=r"AsciiSource failed to make level 0 .*model server is down"):
        session.next_game()
    game = session.next_game()  # asked again in the background: now it works
    assert game.level.name == "balanced sample"
    session.close()


def test_retry_after_death_replays_the_level_and_scores_it_once(ascii_source):
    sink = MemorySink()
    session = Session(ascii_source(("brutal",)), sink, session_id="s", retry_after_death=True, max_retries=1)
    reports = session.play("speedrunner", levels=1)
    session.close()
    assert len(reports) == 1 and reports[0].attempt == 2 and reports[0].outcome == "died"
    level_events = events_by_level(sink.events)["s/0"]
    assert sum(isinstance(e, Retry) for e in level_events) == 1
    scored = [e for e in level_events if isinstance(e, LevelScored)]
    assert len(scored) == 1 and scored[0].features["deaths"] == 2.0


def test_difficulty_rises_when_levels_are_easy(ascii_source):
    source = ascii_source(("trivial",))
    session = Session(source, session_id="s")
    session.play("speedrunner", levels=3)
    assert session.wait_until_ready(60)  # the 4th request is a prefetch: close() would cancel it if still queued
    session.close()
    asked = [spec.difficulty for spec, _ in source.requests]
    start = DEFAULT_FIRST_SPEC.difficulty
    assert asked[:4] == [start, start, start + 1, start + 2]  # one level of lag: prefetch never waits


def test_a_level_won_only_after_dying_does_not_raise_difficulty(ascii_source):
    from engine.core.entities import GameStatus

    source = ascii_source(("trivial",))
    session = Session(source, session_id="s", retry_after_death=True)
    first = session.next_game()
    first._finish(GameStatus.DEAD)  # died on the first try (no fight needs arranging)
    assert not session.end_game(first).final
    retry = session.next_game()
    run_bot(retry, make_bot("speedrunner"))  # ...then walked through the retry without a scratch
    report = session.end_game(retry)
    assert report.outcome == "completed" and report.stats.deaths == 1
    session.play("speedrunner", levels=1)  # starting level 1 asks for level 2 with level 0's stats
    assert session.wait_until_ready(60)  # that request is a prefetch: close() would cancel it if still queued
    session.close()
    asked = [spec.difficulty for spec, _ in source.requests]
    start = DEFAULT_FIRST_SPEC.difficulty
    assert asked[:3] == [start, start, start]  # not start + 1, as a clean win would give


@pytest.mark.parametrize(("completed", "deaths", "damage", "step"), [
    (True, 0, 2, 1),     # a clean, quick win: one step up
    (True, 1, 2, 0),     # won after a death: keep the challenge
    (True, 3, 0, 0),     # won after several deaths: still not harder
    (True, 0, 15, 0),    # a close call: keep it
    (False, 1, 20, -1),  # died and gave up: one step down
    (False, 0, 3, -1),   # quit without finishing: one step down
])
def test_difficulty_policy_steps(completed, deaths, damage, step):
    from engine.core.difficulty import LevelStats, next_spec

    stats = LevelStats(completed=completed, deaths=deaths, turns=30, par_turns=25, damage_taken=damage,
                       max_hp=20, quit=not completed and deaths == 0)
    assert next_spec(DEFAULT_FIRST_SPEC, stats).difficulty == DEFAULT_FIRST_SPEC.difficulty + step


def test_custom_policy_and_close_records_an_abandoned_level(ascii_source):
    seen = []

    def policy(spec, stats):
        seen.append(stats)
        return spec

    sink = MemorySink()
    session = Session(ascii_source(), sink, session_id="s", difficulty_policy=policy)
    game = session.next_game()
    game.act(Move(1, 0))
    session.close()
    assert seen == [None]
    assert sink.events[-2].outcome == "quit" and isinstance(sink.events[-1], LevelScored)
    assert sink.events[-1].features["early_quit"] == 1.0


def test_an_unplayable_level_is_skipped_with_a_clear_error():
    from engine.core.level import Placed
    from engine.core.samples import sample_level
    from engine.core.source import SourcedLevel

    class OddSource:
        served = 0

        def start_session(self, session_id):
            pass

        def get_level(self, spec, *, seed):
            self.served += 1
            level = sample_level("balanced")
            if self.served == 1:
                level = type(level)(name="odd", grid=level.grid, spawn=level.spawn, exit=level.exit,
                                    enemies=[Placed("dragon", 10, 2)], theme="crypt")
            return SourcedLevel(level, backend="odd")

    session = Session(OddSource(), session_id="s")
    with pytest.raises(LevelSourceError, match=r"cannot be played: .*dragon"):
        session.next_game()
    assert session.next_game().level_id == "s/1"
    session.close()


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_a_bad_seed_is_a_clear_error_when_the_session_is_made(ascii_source, seed):
    with pytest.raises(ValueError, match="non-negative int"):
        Session(ascii_source, seed=seed)
