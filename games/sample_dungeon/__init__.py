"""The sample dungeon: a small roguelike built on the engine and the generator facade."""
