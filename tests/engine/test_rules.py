"""Rules core: movement, bump attacks, damage, death, items, exit, enemy behaviours, determinism."""

from __future__ import annotations

import pytest

from engine.core.actions import Move, Quit, Wait
from engine.core.entities import GameStatus
from engine.core.errors import LevelFormatError
from engine.core.game import Game, RulesConfig
from engine.core.samples import level_from_ascii, sample_level
from engine.core.telemetry import (
    Attack,
    DamageDealt,
    DamageTaken,
    Death,
    ItemPickup,
    LevelEnd,
    LevelStart,
    MemorySink,
)
from engine.core.bots import make_bot, run_bot

EAST = Move(1, 0)
WEST = Move(-1, 0)


def play(picture: str, actions, *, seed: int = 0, config: RulesConfig | None = None):
    sink = MemorySink()
    game = Game(level_from_ascii(picture), seed, sink, "gen-1", level_id="L", config=config)
    for a in actions:
        game.act(a)
    return game, sink.events


def kinds(events):
    return [type(e).__name__ for e in events]


def test_walk_to_exit_wins_and_reports_level_end():
    game, events = play("#######\n#@...>#\n#######", [EAST] * 4)
    assert game.status is GameStatus.WON and game.turn == 4
    assert isinstance(events[0], LevelStart) and events[0].par_turns == 4
    end = events[-1]
    assert isinstance(end, LevelEnd) and end.outcome == "completed" and end.turn == 4
    assert all(e.level_id == "L" and e.generation_id == "gen-1" for e in events)


def test_walls_cost_no_turn_and_actions_after_the_end_do_nothing():
    game, _ = play("#####\n#@.>#\n#####", [WEST, Move(0, -1)])
    assert game.turn == 0 and game.player.pos == (1, 1)
    assert "wall" in game.messages[-1]
    game.act(EAST), game.act(EAST)
    assert game.status is GameStatus.WON
    assert game.act(WEST) is False and game.player.pos == (3, 1)


def test_bump_attacks_and_kills_an_enemy():
    # a rat has 3 HP, the player hits for 3: one bump kills it
    game, events = play("########\n#@r...>#\n########", [EAST])
    assert game.enemies == [] and game.stats.kills == 1
    dealt = [e for e in events if isinstance(e, DamageDealt)]
    assert dealt and dealt[0].killed and dealt[0].kind == "rat"
    assert game.player.pos == (1, 1)  # attacking does not move the player


def test_enemies_hurt_and_kill_the_player():
    cfg = RulesConfig(player_hp=4, regen_every=0)
    game, events = play("#########\n#@o....>#\n#########", [Wait()] * 3, config=cfg)
    assert game.status is GameStatus.DEAD
    taken = [e for e in events if isinstance(e, DamageTaken)]
    assert [t.hp for t in taken] == [1, 0]  # orc hits for 3
    death = next(e for e in events if isinstance(e, Death))
    assert death.cause == "orc"
    assert isinstance(events[-1], LevelEnd) and events[-1].outcome == "died"
    assert game.act(Wait()) is False


def test_items_are_picked_up_by_stepping_on_them():
    cfg = RulesConfig(player_hp=20, regen_every=0)
    game, events = play("###########\n#@$!?%...>#\n###########", [EAST] * 4, config=cfg)
    picked = [e.kind for e in events if isinstance(e, ItemPickup)]
    assert picked == ["treasure", "potion", "scroll", "food"]
    assert game.items == [] and game.stats.gold == cfg.treasure_gold
    assert game.player.attack == cfg.player_attack + cfg.scroll_attack


def test_potion_heals_up_to_max_hp():
    game, _ = play("#######\n#@!..>#\n#######", [])
    game.player.hp = 5
    game.act(EAST)
    assert game.player.hp == 5 + game.config.potion_heal
    game2, _ = play("#######\n#@!..>#\n#######", [EAST])
    assert game2.player.hp == game2.player.max_hp


def test_quit_ends_the_level_with_events():
    game, events = play("#######\n#@...>#\n#######", [EAST, Quit()])
    assert game.status is GameStatus.QUIT
    assert kinds(events)[-2:] == ["Quit", "LevelEnd"] and events[-1].outcome == "quit"


def test_unknown_enemy_kind_is_a_clear_level_error():
    from engine.core.level import Level, Placed, rows_to_grid

    lvl = Level(name="x", grid=rows_to_grid(["#####", "#...#", "#####"]), spawn=(1, 1), exit=(3, 1),
                enemies=[Placed("dragon", 2, 1)], theme="crypt")
    with pytest.raises(LevelFormatError, match=r"enemies\[0\].kind.*dragon"):
        Game(lvl)


# ------------------------------------------------------------------ behaviours

ROOM = """
#################
#@..............#
#...............#
#...............#
#......{e}........#
#...............#
#...............#
#..............>#
#################
"""


def test_chaser_walks_to_the_player_it_sees():
    game, _ = play(ROOM.format(e="g"), [Wait()] * 3)
    goblin = game.enemies[0]
    assert max(abs(goblin.x - 1), abs(goblin.y - 1)) == 6 - 3  # one step closer per turn
    assert goblin.target == (1, 1) and goblin.alert > 0


def test_chaser_reaches_and_attacks():
    game, events = play(ROOM.format(e="g"), [Wait()] * 15)
    assert any(isinstance(e, DamageTaken) and e.kind == "goblin" for e in events)


def test_guard_holds_position_until_it_sees_the_player():
    wall_between = """
###############
#@....#.......#
#.....#...s...#
#.....#.......#
#.............#
#............>#
###############
"""
    game, _ = play(wall_between, [Wait()] * 5)
    assert game.enemies[0].pos == (10, 2)  # unseen: holds its post
    for move in [Move(1, 1)] * 3 + [EAST] * 3:  # through the gap, into its view
        game.act(move)
    guard = game.enemies[0]
    assert guard.pos != (10, 2) and guard.alert > 0  # now it comes


def test_wanderer_drifts_at_random_but_attacks_when_adjacent():
    game, _ = play(ROOM.format(e="r"), [Wait()] * 12, config=RulesConfig(regen_every=0))
    assert game.enemies[0].pos != (7, 4)
    game2, events2 = play("#######\n#@r...#\n#....>#\n#######", [Wait()], seed=3)
    assert any(isinstance(e, Attack) and e.attacker == "rat" for e in events2)


def test_same_seed_same_game_and_seed_matters_for_wanderers():
    level = sample_level("balanced")

    def events_for(seed):
        sink = MemorySink()
        run_bot(Game(level, seed, sink, level_id="L"), make_bot("explorer", seed))
        return sink.events

    assert events_for(7) == events_for(7)
    assert events_for(7) != events_for(8)


@pytest.mark.parametrize("bot", ["explorer", "speedrunner", "cautious"])
def test_naive_baseline_plays_exactly_the_same_game(bot):
    level = sample_level("balanced")
    runs = []
    for naive in (False, True):
        sink = MemorySink()
        run_bot(Game(level, 5, sink, level_id="L", config=RulesConfig(naive=naive)), make_bot(bot, 5))
        runs.append(sink.events)
    assert runs[0] == runs[1]


def test_visible_and_explored_follow_the_player():
    game, _ = play(ROOM.format(e="r"), [])
    assert game.visible[1, 1] and game.explored[1, 1]
    assert not game.visible[7, 15]  # beyond the 8-tile radius
    for _ in range(8):
        game.act(Move(1, 1) if game.player.y < 6 else EAST)
    assert game.explored[7, 15] or game.status is not GameStatus.PLAYING


def test_rules_preset_loads_from_yaml(tmp_path):
    from engine.core.game import ConfigValueError
    from engine.presets import load_rules

    preset = tmp_path / "hard.yaml"
    preset.write_text("player_hp: 12\nregen_every: 0\nfov_radius: 6\n", encoding="utf-8")
    cfg = load_rules(preset)
    assert (cfg.player_hp, cfg.regen_every, cfg.fov_radius, cfg.player_attack) == (12, 0, 6, 3)
    game, _ = play("#######\n#@...>#\n#######", [], config=cfg)
    assert game.player.hp == 12
    preset.write_text("player_hp: lots\n", encoding="utf-8")
    with pytest.raises(ConfigValueError, match="player_hp: expected int"):
        load_rules(preset)


@pytest.mark.parametrize("kind", ["balanced", "brutal"])
def test_random_play_keeps_the_world_consistent(kind):
    import numpy as np

    from engine.core.actions import DIRECTIONS

    level = sample_level(kind)
    rng = np.random.default_rng(0)
    moves = [Move(*d) for d in DIRECTIONS.values()] + [Wait()]
    for seed in range(15):
        game = Game(level, seed)
        for _ in range(150):
            game.act(moves[int(rng.integers(len(moves)))])
            positions = [e.pos for e in game.enemies] + [game.player.pos]
            assert len(set(positions)) == len(positions), "two actors on one tile"
            assert all(game.walkable[y, x] for x, y in positions)
            assert 0 <= game.player.hp <= game.player.max_hp or game.status is GameStatus.DEAD
            assert all(e.alive for e in game.enemies)
            if game.finished:
                break
