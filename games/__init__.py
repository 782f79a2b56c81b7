"""The sample games shipped with Dungeon Forge (nothing imports this package)."""
