"""The benchmark's baseline: the same gates written the straightforward way, in pure Python.

Lists of lists, a ``deque`` breadth-first search for reachability and
regions, one Python step per tile.  It exists only so the benchmark can
show what NumPy and ``scipy.ndimage`` buy; a test checks that it reaches the
same verdicts (the same failure codes) as :mod:`generator.validation` on
every benchmark level.  It reads :class:`~engine.core.level.Level` objects
only (parsing is not what it measures).
"""

from __future__ import annotations

from collections import deque

from engine.core.content import ALL_THEMES, ENEMY_KINDS, ITEM_KINDS
from engine.core.level import Level, LevelSpec

FLOOR, WALL, DOOR = 0, 1, 2


def baseline_codes(level: Level, spec: LevelSpec | None = None) -> set[str]:
    """The set of failure codes the gates give ``level`` (empty when valid)."""
    rows = level.grid.tolist()
    h = len(rows)
    w = len(rows[0])
    codes: set[str] = set()
    # V1
    for y in range(h):
        for x in range(w):
            if rows[y][x] not in (FLOOR, WALL, DOOR):
                codes.add("V1.unknown_tile")
    if spec is not None:
        if w != spec.width:
            codes.add("V1.spec_width")
        if h != spec.height:
            codes.add("V1.spec_height")
        if level.theme in ALL_THEMES and level.theme != spec.theme:
            codes.add("V1.theme_mismatch")
    if level.theme not in ALL_THEMES:
        codes.add("V1.unknown_theme")
    for e in level.enemies:
        if e.kind not in ENEMY_KINDS:
            codes.add("V1.unknown_enemy_kind")
    for i in level.items:
        if i.kind not in ITEM_KINDS:
            codes.add("V1.unknown_item_kind")
    # V2
    for y in range(h):
        for x in range(w):
            if (y == 0 or y == h - 1 or x == 0 or x == w - 1) and rows[y][x] != WALL:
                codes.add("V2.open_border")

    def walkable(x: int, y: int) -> bool:
        return 0 <= x < w and 0 <= y < h and rows[y][x] != WALL  # unknown glyphs count as floor

    # V3
    things = [("spawn", *level.spawn), ("exit", *level.exit)]
    things += [("enemy", e.x, e.y) for e in level.enemies] + [("item", i.x, i.y) for i in level.items]
    seen: set[tuple[int, int]] = set()
    standing = []
    for kind, x, y in things:
        if not (0 <= x < w and 0 <= y < h):
            codes.add("V3.out_of_bounds")
        elif not walkable(x, y):
            codes.add("V3.on_wall")
        else:
            standing.append((kind, x, y))
            if (x, y) in seen:
                codes.add("V3.overlap")
            seen.add((x, y))
    # V5
    sx, sy = level.spawn
    if spec is not None and abs(len(level.enemies) - spec.enemies) > max(1, spec.enemies // 4):
        codes.add("V5.enemy_count")
    for e in level.enemies:
        if max(abs(e.x - sx), abs(e.y - sy)) <= 4:
            codes.add("V5.enemy_near_spawn")
    # V6: label every region by breadth-first search
    region = [[0] * w for _ in range(h)]
    n_regions = 0
    for y0 in range(h):
        for x0 in range(w):
            if walkable(x0, y0) and not region[y0][x0]:
                n_regions += 1
                region[y0][x0] = n_regions
                queue = deque([(x0, y0)])
                while queue:
                    x, y = queue.popleft()
                    for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                        if walkable(nx, ny) and not region[ny][nx]:
                            region[ny][nx] = n_regions
                            queue.append((nx, ny))
    if n_regions > 1:
        codes.add("V6.disconnected")
    if walkable(sx, sy):
        home = region[sy][sx]
        for kind, x, y in standing:
            if kind != "spawn" and region[y][x] != home:
                codes.add({"exit": "V6.unreachable_exit", "enemy": "V6.unreachable_enemy",
                           "item": "V6.unreachable_item"}[kind])
    # V7
    walls = sum(row.count(WALL) for row in rows)
    density = walls / (w * h)
    if density < 0.10:
        codes.add("V7.density_low")
    elif density > 0.60:
        codes.add("V7.density_high")
    return codes
