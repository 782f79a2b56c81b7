"""Headless rules core.  Never imports arcade: rules run fast without a window."""

from engine.core.actions import DIRECTIONS, Action, Move, Quit, Wait
from engine.core.bots import BOTS, PlayOutcome, play_level
from engine.core.content import Tile
from engine.core.difficulty import LevelStats, next_spec
from engine.core.entities import Actor, GameStatus, Item
from engine.core.errors import EngineError, LevelFormatError, LevelSourceError, SpecError
from engine.core.fun import FunScore, fun_score
from engine.core.game import Game, RulesConfig
from engine.core.level import Level, LevelDoc, LevelSpec, Placed, Point
from engine.core.session import LevelNotReady, LevelReport, Session
from engine.core.source import LevelSource, SourcedLevel
from engine.core.telemetry import JsonlSink, MemorySink, TelemetrySink

__all__ = [
    "BOTS",
    "DIRECTIONS",
    "Action",
    "Actor",
    "EngineError",
    "FunScore",
    "Game",
    "GameStatus",
    "Item",
    "JsonlSink",
    "Level",
    "LevelDoc",
    "LevelFormatError",
    "LevelNotReady",
    "LevelReport",
    "LevelSource",
    "LevelSourceError",
    "LevelSpec",
    "LevelStats",
    "MemorySink",
    "Move",
    "Placed",
    "PlayOutcome",
    "Point",
    "Quit",
    "RulesConfig",
    "Session",
    "SourcedLevel",
    "SpecError",
    "TelemetrySink",
    "Tile",
    "Wait",
    "fun_score",
    "next_spec",
    "play_level",
]
