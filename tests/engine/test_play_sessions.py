"""The window game's play sessions: a new Session (and routing reload) per game, training in between.

These cover the logic ``DungeonApp`` runs on "play again" without a window;
``tests/render/test_app.py`` checks the screen flow that calls it.
"""

from __future__ import annotations

from games.sample_dungeon.app import BackgroundTraining, PlaySessions, between_sessions_training


def test_each_play_session_is_a_new_session_that_restarts_the_source(ascii_source):
    source = ascii_source()
    trained = []
    plays = PlaySessions(source, None, seed=4, stamp="t", train=lambda: trained.append(len(source.sessions)))
    first = plays.new_session()
    assert first.wait_until_ready(30)  # start_session runs before the first level is made
    first.close()
    second = plays.new_session()
    assert second.wait_until_ready(30)
    second.close()
    assert second is not first and second.session_id != first.session_id
    # the source was told about each session: the generator facade reloads routing there
    assert source.sessions == [first.session_id, second.session_id]
    assert trained == [0, 1]  # training starts as each play session begins
    assert first.seed == 4 and second.seed != first.seed  # play again brings other levels
    assert [s.retry_after_death for s in (first, second)] == [True, True]


def test_same_seed_same_sessions(ascii_source):
    runs = [PlaySessions(ascii_source(), None, seed=9), PlaySessions(ascii_source(), None, seed=9)]
    got = [[plays.new_session() for _ in range(3)] for plays in runs]
    try:
        assert [s.seed for s in got[0]] == [s.seed for s in got[1]]  # a seeded run stays reproducible
        assert len({s.seed for s in got[0]}) == 3
    finally:
        for session in [*got[0], *got[1]]:
            session.close()


def test_training_follows_the_setting_and_the_source(tmp_path):
    assert between_sessions_training(False, "generator", str(tmp_path)) is None  # --no-background-train
    assert between_sessions_training(True, "samples", str(tmp_path)) is None  # no model could use it
    assert between_sessions_training(True, "procedural", str(tmp_path)) is None
    train = between_sessions_training(True, "auto", str(tmp_path))
    assert isinstance(train, BackgroundTraining) and train.data_dir == str(tmp_path)


class _FakeChild:
    def __init__(self) -> None:
        self.running = True

    def poll(self) -> int | None:
        return None if self.running else 0


def test_background_training_never_runs_twice_at_once(tmp_path):
    children: list[_FakeChild] = []

    def launch(data_dir: str) -> _FakeChild:
        assert data_dir == str(tmp_path)
        children.append(_FakeChild())
        return children[-1]

    train = BackgroundTraining(str(tmp_path), launch=launch)
    assert train() is True
    assert train() is False and len(children) == 1  # the last session's trainer is still at work
    children[0].running = False
    assert train() is True and len(children) == 2 and train.started == 2


def test_a_trainer_that_cannot_start_is_tried_again_next_session(tmp_path):
    results = [None, _FakeChild()]
    train = BackgroundTraining(str(tmp_path), launch=lambda _: results.pop(0))
    assert train() is False  # e.g. the trainer is not installed: play goes on
    assert train() is True and train.started == 1
