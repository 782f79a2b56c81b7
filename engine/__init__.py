"""Dungeon Forge engine: a headless roguelike rules core (``engine.core``) and
arcade rendering (``engine.render``)."""
