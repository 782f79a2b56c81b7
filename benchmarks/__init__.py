"""Dungeon Forge benchmarks: `python -m benchmarks.NAME --json` (seeded, with a baseline ratio)."""
