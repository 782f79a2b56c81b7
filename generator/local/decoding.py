"""Decoding for students: a grammar for the level grid form, masked sampling, retries.

Size: over 400 lines on purpose. The grammar, the logit masks and the sampler
are one algorithm whose invariants (counters, border, caps) cross all three.

The level form (:mod:`generator.local.codec`) is fully determined in its
shape by the spec, so the decoder does not let the model get it wrong:
:class:`LevelGrammar` knows at every position which characters may come
next, and :func:`sample` masks every other token's logit.  That forces

* each row's ``YYEEIIK`` prefix (the counters are computed, not guessed),
* the row length and the newline after it, and exactly ``height`` rows,
* walls all around the border, and a wall share inside gate V7's range,
* at most one spawn and one exit, at most ``enemies`` enemies and ``items``
  items (of the theme's kinds), no enemy within 4 tiles of the spawn, and
  every entity placed before the grid runs out of interior cells;
* one connected walkable region (gate V6): a wall is refused where it would
  cut a region off from every cell still to be written, because such a
  region could never join the others (:meth:`LevelGrammar.allowed`);
* a design rule rather than a gate: the exit at least
  :data:`EXIT_SPAN` of the map's larger inner side from the spawn (in x or
  y), as the teacher's levels have it, unless the grid is running out.
  Without it a small student puts the exit next to the spawn, and players
  (the bots' fun score) notice at once.

Not a mask but a tilt: the *quota tilt* (:meth:`LevelGrammar.quota_bias`)
adds to each kind of thing's logits the log of (things still needed) over
(what the model's own running rate would place in the cells left). A model
that places at the rate its counts need is left alone; a shy one is nudged
evenly over the whole level, so the must-place rule (which places what is
left when the cells run out, in the last rows) rarely has to. Measured on
the count control fitted on the wide preset's data, 30 whole-range specs:
must-place share 0.53 → 0.05, row-tenth JSD to the teacher 0.158 → 0.006.

What masking cannot force (the wall density's lower bound when it clashes
with connectivity, things a grammar cannot see) is checked by the validator; :func:`generate_valid_level`
samples again with another seed when it fails, a bounded number of times.
Runs of forced tokens (prefix, border walls) go through the model in one
forward pass, so they cost little.

>>> g = LevelGrammar({"width": 16, "height": 12, "enemies": 1, "items": 0, "theme": "crypt"})
>>> g.forced_run()[:9]
'0001003##'
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from engine.core.content import (
    ENEMY_KINDS,
    EXIT_GLYPH,
    ITEM_KINDS,
    SPAWN_GLYPH,
    theme_enemy_kinds,
    theme_item_kinds,
)
from generator.backends.base import sampling_seed
from generator.local.codec import ENEMY_GLYPHS, ITEM_GLYPHS, ROW_PAD, ROW_PREFIX_LEN, row_prefix

if TYPE_CHECKING:
    import torch

__all__ = ["EOS", "LevelAttempts", "LevelGrammar", "SampleResult", "decode_level_output", "fill_unreachable_pockets",
           "generate_valid_level", "place_spawn_and_exit",
           "masked_completion", "sample", "sample_levels", "sampling_seed"]

log = logging.getLogger(__name__)

#: Marker for "end of sequence" among a grammar's allowed characters.
EOS: Final = "<eos>"
TERRAIN: Final = frozenset(".#+")
#: Share of the map that must be wall (gate V7, ``generator.validation.DENSITY_RANGE``).
DENSITY_RANGE: Final = (0.10, 0.60)
#: An enemy may not stand within this many tiles of the spawn in x and y (gate V5,
#: ``generator.validation.SPAWN_SAFE_RADIUS``; Chebyshev distance).
SPAWN_CLEARANCE: Final = 4
#: Cells after the spawn, in reading order, within SPAWN_CLEARANCE of it (4 + 4 rows of 9).
_SPAWN_SHADOW: Final = 40
#: Least spawn-to-exit distance (Chebyshev) as a share of the map's larger inner side.  The
#: procedural teacher's levels (sizes 16-24 x 12-16): 10th percentile 0.32, 25th 0.50, median 0.67.
#: At 0.65 a demo student's levels scored as much fun as the teacher's on the same 40 specs (0.640 vs
#: 0.633; 0.552 at 0.5, when the spawn and the exit were often both left to the crowded last row).
EXIT_SPAN: Final = 0.65
#: Pseudo-cells behind a thing's running placement rate (:meth:`LevelGrammar.quota_bias`): until the
#: model has shown its own rate over this many cells, the rate the count needs stands in for it.
QUOTA_PRIOR_CELLS: Final = 32
#: The quota tilt's bound, in nats either way.
QUOTA_MAX_BIAS: Final = 4.0


class LevelGrammar:
    """Which characters may come next in a level completion for ``spec``.

    Feed it every character the model emits (:meth:`feed`); :meth:`allowed`
    is the set of characters (or :data:`EOS`) permitted at the next position.
    """

    def __init__(self, spec: dict[str, Any], *, exit_span: float = EXIT_SPAN, row_stride: int | None = None,
                 quota: bool = True) -> None:
        self.width, self.height = int(spec["width"]), int(spec["height"])
        #: whether :func:`masked_completion` tilts placements toward the counts still needed (:meth:`quota_bias`)
        self.quota = quota
        #: characters of tiles plus padding per row (the codec's ``row_stride``; the width when unpadded)
        self.stride = max(self.width, int(row_stride or 0))
        #: the exit keeps at least this distance from the spawn (Chebyshev), unless the grid runs out
        self.exit_distance = max(1, math.ceil(exit_span * max(self.width - 2, self.height - 2)))
        # Cells from which a cell far enough for the exit still comes later in reading order.
        self.far_ahead = np.zeros((self.height, self.width), dtype=bool)
        for cy in range(1, self.height - 1):
            for cx in range(1, self.width - 1):
                self.far_ahead[cy, cx] = self._far_cell_after(cx, cy, cx, cy)
        self.enemies_left, self.items_left = int(spec["enemies"]), int(spec["items"])
        theme = spec["theme"]
        self.enemy_glyphs = frozenset(ENEMY_KINDS[k].glyph for k in theme_enemy_kinds(theme)) or frozenset(ENEMY_GLYPHS)
        self.item_glyphs = frozenset(ITEM_KINDS[k].glyph for k in theme_item_kinds(theme)) or frozenset(ITEM_GLYPHS)
        self.spawn: tuple[int, int] | None = None
        self.exit_placed = False
        self.enemy_cells: list[tuple[int, int]] = []
        # Interior cells where the spawn may still go (not within clearance of an enemy).
        self.spawn_ok = np.zeros((self.height, self.width), dtype=bool)
        self.spawn_ok[1:-1, 1:-1] = True
        self.y = 0
        self.pos = 0  # position within the current line: prefix, then tiles, then newline
        self._prefix = self._row_prefix()
        self.done = False
        self.interior_total = max(0, (self.width - 2) * (self.height - 2))
        # Gate V7: walls (border included) must cover DENSITY_RANGE of the map.
        border = self.width * self.height - self.interior_total
        area = self.width * self.height
        self.interior_walls = 0
        self.interior_walls_max = max(0, math.floor(DENSITY_RANGE[1] * area) - border)
        self.interior_walls_min = max(0, math.ceil(DENSITY_RANGE[0] * area) - border)
        # Walkable regions so far (gate V6): a union-find over cell indices y * width + x,
        # -1 for walls and cells not yet written; ``regions`` counts the distinct roots.
        self.parent = [-1] * (self.width * self.height)
        self.regions = 0
        #: every thing placed, in order: (glyph, x, y, whether the must-place rule forced it there)
        self.placements: list[tuple[str, int, int, bool]] = []
        self._must_here = False
        # Quota tilt: per kind of thing, the model's summed placement probability and the cells it was seen on.
        self._rate_sum = {kind: 0.0 for kind in ("spawn", "exit", "enemy", "item")}
        self._rate_cells = {kind: 0 for kind in ("spawn", "exit", "enemy", "item")}
        self._rate_prior = {"spawn": 1.0, "exit": 1.0, "enemy": float(self.enemies_left), "item": float(self.items_left)}

    # -- state -----------------------------------------------------------

    def _row_prefix(self) -> str:
        return row_prefix(self.y, self.enemies_left, self.items_left, self.spawn is None, not self.exit_placed)

    @property
    def line_len(self) -> int:
        return ROW_PREFIX_LEN + self.stride

    def _needed(self) -> int:
        return self.enemies_left + self.items_left + (self.spawn is None) + (not self.exit_placed)

    def _interior_cells_after(self, x: int, y: int) -> int:
        """Interior cells that come after ``(x, y)`` in reading order."""
        inner_w = self.width - 2
        index = (y - 1) * inner_w + (x - 1)
        return self.interior_total - index - 1

    # -- the grammar -----------------------------------------------------

    def allowed(self) -> frozenset[str]:
        self._must_here = False
        if self.done:
            return frozenset({EOS})
        if self.pos < ROW_PREFIX_LEN:
            return frozenset({self._prefix[self.pos]})
        if self.pos == self.line_len:
            return frozenset({"\n"})
        if self.pos >= ROW_PREFIX_LEN + self.width:
            return frozenset({ROW_PAD})
        x, y = self.pos - ROW_PREFIX_LEN, self.y
        if y in (0, self.height - 1) or x in (0, self.width - 1):
            return frozenset({"#"})
        terrain = set(TERRAIN)
        if self.interior_walls >= self.interior_walls_max:
            terrain.discard("#")  # one more wall would make the map too dense
        entities: set[str] = set()
        if self.spawn is None and self.spawn_ok[y, x]:
            entities.add(SPAWN_GLYPH)
        if not self.exit_placed:
            entities.add(EXIT_GLYPH)
        if self.enemies_left > 0 and (
            max(abs(self.spawn[0] - x), abs(self.spawn[1] - y)) > SPAWN_CLEARANCE
            if self.spawn is not None
            else self._spawn_room_after(x, y, excluding_near=(x, y)) > 0
        ):
            entities |= self.enemy_glyphs
        if self.items_left > 0:
            entities |= self.item_glyphs
        if entities:
            must = self._must_place(x, y)
            self._must_here = bool(must)
            if must == "spawn" and SPAWN_GLYPH in entities:
                return frozenset({SPAWN_GLYPH})
            if must == "enemy" and entities & self.enemy_glyphs:
                return frozenset(entities & self.enemy_glyphs)
            if must == "exit" and EXIT_GLYPH in entities:
                return frozenset({EXIT_GLYPH})
            if must:
                # the grid is running out: place something now (or a wall the density still needs),
                # but not the spawn or exit too close to each other while a better cell still comes
                placeable = entities - self._deferrable(x, y)
                return frozenset((placeable or entities) | ({"#"} if self._walls_short() and must == "any" else set()))
        if EXIT_GLYPH in entities and not self._exit_far_enough(x, y):
            entities.discard(EXIT_GLYPH)
        if SPAWN_GLYPH in entities and not self._spawn_far_enough(x, y):
            entities.discard(SPAWN_GLYPH)
        if self._walls_short() > self._interior_cells_after(x, y):
            return frozenset({"#"})  # too few walls so far: the rest must be wall
        if "#" in terrain and not self._keeps_connected(x, y, walkable=False):
            terrain.discard("#")  # a wall here would seal a region off for good
        elif not self._keeps_connected(x, y, walkable=True):
            return frozenset({"#"})
        return frozenset(terrain | entities)

    # -- connectivity (gate V6) ------------------------------------------

    def _find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _keeps_connected(self, x: int, y: int, *, walkable: bool) -> bool:
        """Whether writing a walkable tile (or a wall) at ``(x, y)`` still allows one connected region.

        A walkable region can only grow through cells not yet written.  Once
        none of its tiles touches such a cell it is final, so it must then be
        the only region.  As long as every region touches an unwritten cell,
        writing floor everywhere else would join them all (the unwritten
        cells form one connected block), so that is the whole test.
        """
        w, h = self.width, self.height
        here = y * w + x
        merged: set[int] = set()
        if walkable:
            for n in (here - 1, here - w):
                if self.parent[n] >= 0:
                    merged.add(self._find(n))
        regions = self.regions + (1 - len(merged) if walkable else 0)
        if regions == 0:
            return True
        more_rows = y + 1 <= h - 2
        live: set[int] = set()
        # cells of the row above, right of x: their lower neighbour is still to be written
        row_above = (y - 1) * w
        for cx in range(x + 1, w - 1):
            if self.parent[row_above + cx] >= 0:
                live.add(self._find(row_above + cx))
        # cells of this row, left of x: their lower neighbour is written later (if a row remains)
        if more_rows:
            row = y * w
            for cx in range(1, x):
                if self.parent[row + cx] >= 0:
                    live.add(self._find(row + cx))
        if walkable:
            new_root = min(merged) if merged else here
            live = {new_root if r in merged else r for r in live}
            if x + 1 <= w - 2 or more_rows:
                live.add(new_root)
        if len(live) == regions:
            return True
        # nothing touches an unwritten cell: fine only at the very end, with a single region
        return not live and regions == 1 and x == w - 2 and y == h - 2

    def _exit_far_enough(self, x: int, y: int) -> bool:
        """Whether the exit may go at ``(x, y)``: far from the spawn, or leaving a far cell for it."""
        d = self.exit_distance
        if self.spawn is not None:
            return max(abs(self.spawn[0] - x), abs(self.spawn[1] - y)) >= d
        return self._spawn_room_after(x, y, excluding_near=(x, y), radius=d - 1) > 0

    def _spawn_far_enough(self, x: int, y: int) -> bool:
        """Whether the spawn may go at ``(x, y)``: a cell far enough for the exit still comes later.

        (Once the exit is down, cells near it are already out of ``spawn_ok``.)
        """
        return self.exit_placed or bool(self.far_ahead[y, x])

    def _deferrable(self, x: int, y: int) -> set[str]:
        """The spawn or exit, if placing it here would break the distance rule and a later cell would not."""
        out = set()
        if (not self.exit_placed and self.spawn is not None and not self._exit_far_enough(x, y)
                and self._far_cell_after(x, y, *self.spawn)):
            out.add(EXIT_GLYPH)
        if (self.spawn is None and not self._spawn_far_enough(x, y)
                and (self.spawn_ok & self.far_ahead).reshape(-1)[y * self.width + x + 1 :].any()):
            out.add(SPAWN_GLYPH)
        return out

    def _far_cell_after(self, x: int, y: int, fx: int, fy: int) -> bool:
        """Whether an interior cell after ``(x, y)`` lies at least ``exit_distance`` from ``(fx, fy)`` (Chebyshev)."""
        d, last_x, last_y = self.exit_distance, self.width - 2, self.height - 2
        # |c - f| over an interval of cells is largest at one of its ends
        if x < last_x and (abs(y - fy) >= d or max(abs(x + 1 - fx), abs(last_x - fx)) >= d):
            return True  # the rest of this row
        return y < last_y and (max(abs(y + 1 - fy), abs(last_y - fy)) >= d or max(fx - 1, last_x - fx) >= d)

    def glyph_kinds(self) -> dict[str, frozenset[str]]:
        """The things still to place, by kind: ``{"spawn" | "exit" | "enemy" | "item": glyphs}``."""
        kinds: dict[str, frozenset[str]] = {}
        if self.spawn is None:
            kinds["spawn"] = frozenset({SPAWN_GLYPH})
        if not self.exit_placed:
            kinds["exit"] = frozenset({EXIT_GLYPH})
        if self.enemies_left:
            kinds["enemy"] = self.enemy_glyphs
        if self.items_left:
            kinds["item"] = self.item_glyphs
        return kinds

    def quota_bias(self, chance: dict[str, float]) -> dict[str, float]:
        """Log-odds to add to each kind of thing at this cell, so the counts come out right by the model's own rate.

        ``chance`` is the unmasked model's probability of each kind here.
        The grammar keeps each kind's running rate over the cells it was
        offered on (starting from the rate the count needs, worth
        :data:`QUOTA_PRIOR_CELLS` cells) and tilts by ``log(left / (rate x
        cells left))``, bounded by :data:`QUOTA_MAX_BIAS`.  A model whose rate
        already fits gets no tilt, and *where* things go stays the model's
        choice; one that places too few is nudged across the whole level
        instead of the must-place rule crowding the rest into the last rows.
        Call it once per sampled cell (it updates the rates).
        """
        if self.pos < ROW_PREFIX_LEN or self.done:
            return {}
        x, y = self.pos - ROW_PREFIX_LEN, self.y
        if not (0 < x < self.width - 1 and 0 < y < self.height - 1):
            return {}
        cells_left = self._interior_cells_after(x, y) + 1
        left = {"spawn": float(self.spawn is None), "exit": float(not self.exit_placed),
                "enemy": float(self.enemies_left), "item": float(self.items_left)}
        out: dict[str, float] = {}
        for kind, p in chance.items():
            if left.get(kind, 0.0) <= 0:
                continue
            prior_rate = self._rate_prior[kind] / max(1, self.interior_total)
            rate = (self._rate_sum[kind] + QUOTA_PRIOR_CELLS * prior_rate) / (self._rate_cells[kind] + QUOTA_PRIOR_CELLS)
            self._rate_sum[kind] += float(p)
            self._rate_cells[kind] += 1
            expected = max(rate * cells_left, 1e-9)
            out[kind] = float(np.clip(math.log(left[kind] / expected), -QUOTA_MAX_BIAS, QUOTA_MAX_BIAS))
        return out

    def _walls_short(self) -> int:
        return max(0, self.interior_walls_min - self.interior_walls)

    def _must_place(self, x: int, y: int) -> str:
        """Whether the cells left are only just enough for what is left to place ('' if not).

        Enemies may not go near the spawn, so while enemies remain the spawn is
        placed early enough to leave room for them, and cells in its
        neighbourhood do not count as room for enemies.
        """
        after = self._interior_cells_after(x, y)
        if self.spawn is None and self.spawn_ok[y, x] and self._spawn_room_after(x, y) == 0:
            return "spawn"  # the last cell where the spawn can go
        if (self.spawn is None and not self.exit_placed and self.spawn_ok[y, x] and self.far_ahead[y, x]
                and not (self.spawn_ok & self.far_ahead).reshape(-1)[y * self.width + x + 1 :].any()):
            return "spawn"  # the last cell that leaves room for a far exit
        if (self.spawn is not None and not self.exit_placed and self._exit_far_enough(x, y)
                and not self._far_cell_after(x, y, *self.spawn)):
            return "exit"  # the last cell far enough from the spawn
        if self.enemies_left and self.spawn is None and self._needed() + _SPAWN_SHADOW > after:
            return "spawn"
        if self.enemies_left and self.spawn is not None and self.enemies_left > after - self._shadowed_after(x, y):
            return "enemy"
        return "any" if self._needed() + self._walls_short() > after else ""

    def _spawn_room_after(self, x: int, y: int, excluding_near: tuple[int, int] | None = None,
                          radius: int = SPAWN_CLEARANCE) -> int:
        """Cells after ``(x, y)`` where the spawn may still go (minus those within ``radius`` of ``excluding_near``)."""
        flat = self.spawn_ok.reshape(-1)[y * self.width + x + 1 :]
        n = int(flat.sum())
        if excluding_near is not None and n:
            ok = self.spawn_ok.copy()
            _clear_square(ok, *excluding_near, radius)
            n = int(ok.reshape(-1)[y * self.width + x + 1 :].sum())
        return n

    def _shadowed_after(self, x: int, y: int) -> int:
        """Interior cells after ``(x, y)`` too close to the spawn for an enemy."""
        if self.spawn is None:
            return 0
        sx, sy = self.spawn
        n = 0
        for cy in range(max(y, sy - SPAWN_CLEARANCE, 1), min(sy + SPAWN_CLEARANCE, self.height - 2) + 1):
            reach = SPAWN_CLEARANCE
            lo, hi = max(sx - reach, 1), min(sx + reach, self.width - 2)
            if cy == y:
                lo = max(lo, x + 1)
            n += max(0, hi - lo + 1)
        return n

    def forced(self) -> str | None:
        """The only character allowed next, if there is just one."""
        allowed = self.allowed()
        return next(iter(allowed)) if len(allowed) == 1 else None

    def feed(self, ch: str) -> None:
        """Advance past ``ch``; raises ``ValueError`` if the grammar forbids it."""
        if ch not in self.allowed():
            raise ValueError(f"level grammar: {ch!r} not allowed at row {self.y}, column {self.pos}")
        if ch == EOS:
            return
        if ch == ROW_PAD:
            self.pos += 1
            return
        if ch == "\n":
            self.y += 1
            self.pos = 0
            if self.y == self.height:
                self.done = True
            else:
                self._prefix = self._row_prefix()
            return
        if self.pos >= ROW_PREFIX_LEN:
            x = self.pos - ROW_PREFIX_LEN
            if ch == "#" and 0 < x < self.width - 1 and 0 < self.y < self.height - 1:
                self.interior_walls += 1
            elif ch != "#":
                self._join(x, self.y)
            if ch not in TERRAIN:
                self.placements.append((ch, x, self.y, self._must_here))
            if ch == SPAWN_GLYPH:
                self.spawn = (x, self.y)
            elif ch == EXIT_GLYPH:
                self.exit_placed = True
                if self.spawn is None and self._exit_far_enough(x, self.y):
                    # keep the spawn away, unless the grid is running out (then the rule yields)
                    _clear_square(self.spawn_ok, x, self.y, self.exit_distance - 1)
            elif ch in ENEMY_GLYPHS:
                self.enemies_left -= 1
                self.enemy_cells.append((x, self.y))
                _clear_square(self.spawn_ok, x, self.y)
            elif ch in ITEM_GLYPHS:
                self.items_left -= 1
        self.pos += 1

    def _join(self, x: int, y: int) -> None:
        """Add the walkable cell ``(x, y)`` to the regions, joining its left and upper neighbours."""
        here = y * self.width + x
        self.parent[here] = here
        self.regions += 1
        for n in (here - 1, here - self.width):
            if n >= 0 and self.parent[n] >= 0:
                a, b = self._find(n), self._find(here)
                if a != b:
                    self.parent[max(a, b)] = min(a, b)
                    self.regions -= 1

    def forced_run(self) -> str:
        """The characters forced from here on until the next real choice (consumes nothing)."""
        probe = self._copy()
        out = []
        while not probe.done:
            ch = probe.forced()
            if ch is None:
                break
            out.append(ch)
            probe.feed(ch)
        return "".join(out)

    def _copy(self) -> LevelGrammar:
        new = object.__new__(LevelGrammar)
        new.__dict__.update(self.__dict__)
        new.enemy_cells = list(self.enemy_cells)
        new.spawn_ok = self.spawn_ok.copy()
        new.parent = list(self.parent)
        new.placements = list(self.placements)
        new._rate_sum, new._rate_cells = dict(self._rate_sum), dict(self._rate_cells)
        return new


def _clear_square(grid: np.ndarray, x: int, y: int, r: int = SPAWN_CLEARANCE) -> None:
    """Mark every cell within ``r`` of ``(x, y)`` in both x and y False."""
    grid[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = False


def place_spawn_and_exit(level: dict[str, Any]) -> dict[str, Any]:
    """Keep the model's spawn and put the exit on the free cell farthest from it, when that is farther than the model's.

    The procedural teacher's own rule for the exit (the far end of the walk
    from the spawn) applied to the model's spawn (D36). A micro student's
    exit is often a short walk from its spawn even with the exit-span mask,
    and players (the bots' fun score) feel the short level; moving the exit
    alone leaves the spawn where the model chose it. Measured on 30 seeded
    whole-range specs with the wide student (same grids): path 49.6 against
    the teacher's 50.9 and bots' fun 0.521, where the old rule (spawn and
    exit at the two ends of the longest walk, D21) gave 60.0 and 0.498 and
    the model's own exit 37.2 and 0.510. Enemies, items, the spawn and the
    grid never move, so every gate that held still holds. The level is
    returned unchanged when nothing is farther or it cannot be read.
    """
    from engine.core.pathing import UNREACHABLE, steps_from

    try:
        rows = level["rows"]
        walk = np.array([[c != "#" for c in r] for r in rows], dtype=bool)
        free = walk.copy()
        for t in (*level["enemies"], *level["items"]):
            free[int(t["y"]), int(t["x"])] = False
        spawn = (int(level["spawn"]["x"]), int(level["spawn"]["y"]))
        exit_ = (int(level["exit"]["x"]), int(level["exit"]["y"]))
        from_spawn = steps_from(walk, spawn)
        if from_spawn[exit_[1], exit_[0]] >= UNREACHABLE:
            return level  # the validator will say why; nothing to improve here
    except (KeyError, TypeError, ValueError, IndexError):
        return level
    ends = np.where(free & (from_spawn < UNREACHABLE), from_spawn, -1)
    ends[spawn[1], spawn[0]] = -1
    far = np.unravel_index(int(np.argmax(ends)), ends.shape)
    if int(ends[far]) <= int(from_spawn[exit_[1], exit_[0]]):
        return level
    return {**level, "exit": {"x": int(far[1]), "y": int(far[0])}}


def decode_level_output(site: str, text: str, args: dict[str, Any], *, repair: bool = False,
                        place: bool = True) -> tuple[dict[str, Any] | None, str | None, int]:
    """A student's completion as its result: ``(result, error, pockets filled)``.

    For the level site, ``repair`` walls up sealed empty pockets
    (:func:`fill_unreachable_pockets`) and ``place`` (the default) puts the
    exit at the far end of the walk from the model's spawn (:func:`place_spawn_and_exit`).
    Every runtime (torch, the GGUF worker) decodes through here.
    """
    from generator.local.codec import CodecError, decode_result, is_level_site

    try:
        result = decode_result(site, text, args=args)
    except CodecError as exc:
        return None, str(exc), 0
    if not is_level_site(site) or not isinstance(result, dict):
        return result, None, 0
    filled = 0
    if repair:
        result, filled = fill_unreachable_pockets(result)
    if place:
        result = place_spawn_and_exit(result)
    return result, None, filled


def fill_unreachable_pockets(level: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Wall up floor pockets the spawn cannot reach and that hold nothing; returns (level, pockets filled).

    A small model often leaves a few sealed-off empty floor cells, which fail
    gate V6 (one connected floor region) although nothing in them matters.
    Pockets that hold the exit, an enemy or an item are left alone: the
    level stays invalid and is resampled.  Entities and the spawn never move.
    """
    from scipy import ndimage

    rows = level["rows"]
    walk = np.array([[c != "#" for c in r] for r in rows], dtype=bool)
    labels, count = ndimage.label(walk)
    if count <= 1:
        return level, 0
    sx, sy = level["spawn"]["x"], level["spawn"]["y"]
    keep = {int(labels[sy, sx])}
    occupied = {int(labels[t["y"], t["x"]]) for t in (level["exit"], *level["enemies"], *level["items"])}
    fill = np.isin(labels, [k for k in range(1, count + 1) if k not in keep and k not in occupied])
    if not fill.any():
        return level, 0
    grid = np.array([list(r) for r in rows])
    if np.count_nonzero(grid == "#") + np.count_nonzero(fill) > DENSITY_RANGE[1] * grid.size:
        return level, 0  # walling the pockets up would make the map too dense
    grid[fill] = "#"
    filled = len(set(np.unique(labels[fill]).tolist()))
    return {**level, "rows": ["".join(r) for r in grid]}, filled


# ----------------------------------------------------------------- sampling


@dataclass
class SampleResult:
    """One sampled completion."""

    text: str
    token_ids: list[int]
    free_logprobs: list[float] = field(default_factory=list)  #: raw-model logprob of each sampled (unforced) token
    forced_tokens: int = 0
    forward_passes: int = 0
    stopped: str = "eos"  #: "eos", "grammar", "stop", or "length"
    placements: list[tuple[str, int, int, bool]] = field(default_factory=list)  #: the grammar's record (levels)

    @property
    def mean_logprob(self) -> float:
        """Mean log-probability the unmasked model gave the tokens it chose (0 if all were forced)."""
        return float(sum(self.free_logprobs) / len(self.free_logprobs)) if self.free_logprobs else 0.0


class _CharTable:
    """Token ids of single-character tokens, so a grammar's characters map to logits."""

    def __init__(self, token_strings: list[str], eos_id: int) -> None:
        self.eos_id = eos_id
        self.char_to_id: dict[str, int] = {}
        for i, s in enumerate(token_strings):
            if len(s) == 1 and s not in self.char_to_id:
                self.char_to_id[s] = i
        self.id_to_str = token_strings

    def ids(self, chars: frozenset[str]) -> list[int]:
        out = []
        for ch in chars:
            if ch == EOS:
                out.append(self.eos_id)
            elif ch in self.char_to_id:
                out.append(self.char_to_id[ch])
        return out


def _tilt_toward_quota(scores: np.ndarray, logits: np.ndarray, logz: float, grammar: LevelGrammar,
                       table: _CharTable, allowed: set[int]) -> None:
    """Add :meth:`LevelGrammar.quota_bias` to the allowed tokens of each kind of thing (in place)."""
    ids = {kind: [i for i in table.ids(glyphs) if i in allowed] for kind, glyphs in grammar.glyph_kinds().items()}
    chance = {kind: float(np.exp(np.logaddexp.reduce(logits[i]) - logz)) for kind, i in ids.items() if i}
    for kind, bias in grammar.quota_bias(chance).items():
        scores[ids[kind]] += bias


def masked_completion(
    forward: Callable[[list[int]], Any],
    prompt_ids: list[int],
    *,
    token_strings: list[str],
    eos_id: int,
    rng: np.random.Generator,
    max_new_tokens: int,
    temperature: float = 1.0,
    grammar: LevelGrammar | None = None,
    stop: str | None = None,
    before_step: Callable[[int], None] | None = None,
    constraint: Any = None,
) -> SampleResult:
    """The decoding loop shared by every runtime: ``forward(new_ids)`` returns the next token's logits.

    ``forward`` is fed the tokens not yet seen (the prompt first, then one
    sampled token or a run of forced ones) and keeps its own cache.  With a
    ``grammar`` the logits of every token it forbids are masked and forced
    runs are fed in one call.  Without one, sampling stops at EOS, at
    ``stop`` (a string the text ends with) or at ``max_new_tokens``.
    ``temperature <= 0`` means greedy.  ``before_step(tokens_so_far)`` is a
    hook (the GGUF worker's crash injection).  ``constraint`` (a
    :class:`generator.local.constrain.SchemaMatcher`) masks every token a
    generic site's output schema forbids, feeds the tokens it forces in one
    call, and ends the answer when the schema's value is complete.
    """
    table = _CharTable(token_strings, eos_id)
    result = SampleResult(text="", token_ids=[])
    pieces: list[str] = []
    pending = list(prompt_ids)  # tokens to feed in the next forward call
    while len(result.token_ids) < max_new_tokens:
        if before_step is not None:
            before_step(len(result.token_ids))
        if constraint is not None:
            if constraint.done:
                result.stopped = "grammar"
                break
            run_ids = constraint.forced()[: max_new_tokens - len(result.token_ids)]
            if run_ids:
                for t in run_ids:
                    constraint.advance(t)
                pieces += [table.id_to_str[t] for t in run_ids]
                result.token_ids += run_ids
                result.forced_tokens += len(run_ids)
                pending += run_ids
                continue
        if grammar is not None:
            run = grammar.forced_run()
            if grammar.done or (run == "" and grammar.forced() == EOS):
                result.stopped = "grammar"
                break
            if run:
                missing = set(run) - table.char_to_id.keys()
                if missing:
                    raise ValueError(f"tokenizer has no single-character token for {sorted(missing)}")
                ids = [table.char_to_id[c] for c in run]
                for c in run:
                    grammar.feed(c)
                pieces.append(run)
                result.token_ids += ids
                result.forced_tokens += len(ids)
                pending += ids
                if grammar.done:
                    result.stopped = "grammar"
                    break
                continue
        logits = np.asarray(forward(pending), dtype=np.float64)
        result.forward_passes += 1
        pending = []
        logz = float(np.logaddexp.reduce(logits))
        if grammar is not None:
            allowed = table.ids(grammar.allowed())
            if not allowed:
                raise ValueError("tokenizer has no token for any character the level grammar allows")
            scores = np.full_like(logits, -np.inf)
            scores[allowed] = logits[allowed]
            if grammar.quota and len(allowed) > 1:
                _tilt_toward_quota(scores, logits, logz, grammar, table, set(allowed))
        elif constraint is not None:
            mask = constraint.allowed()
            n = min(len(mask), len(logits))
            scores = np.full_like(logits, -np.inf)
            scores[:n] = np.where(mask[:n], logits[:n], -np.inf)
            if not np.isfinite(scores).any():
                raise ValueError("the output schema allows no token of this vocabulary here")
        else:
            scores = logits
        if temperature <= 0:
            choice = int(np.argmax(scores))
        else:
            z = scores / temperature
            p = np.exp(z - z.max())
            choice = int(rng.choice(len(p), p=p / p.sum()))
        result.free_logprobs.append(float(logits[choice]) - logz)
        if choice == eos_id:
            result.stopped = "eos"
            break
        text = table.id_to_str[choice]
        if grammar is not None:
            grammar.feed(text)
        if constraint is not None:
            constraint.advance(choice)
        pieces.append(text)
        result.token_ids.append(choice)
        pending = [choice]
        if stop is not None and "".join(pieces[-4:]).endswith(stop):
            result.stopped = "stop"
            break
    else:
        result.stopped = "length"
    result.text = "".join(pieces)
    if grammar is not None:
        result.placements = list(grammar.placements)
    return result


def sample(
    model: Any,
    prompt_ids: list[int],
    *,
    token_strings: list[str],
    eos_id: int,
    seed: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    grammar: LevelGrammar | None = None,
    stop: str | None = None,
    constraint: Any = None,
) -> SampleResult:
    """Sample a completion of ``prompt_ids`` from a torch causal LM with a KV cache (:func:`masked_completion`)."""
    import torch

    device = next(iter(model.parameters()), torch.empty(0)).device
    past = None
    # transformers 5 renamed past_key_values to cache; support both spellings.
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def forward(ids: list[int]) -> np.ndarray:
        nonlocal past
        inp = torch.tensor([ids], dtype=torch.long, device=device)
        out = model(input_ids=inp, use_cache=True, logits_to_keep=1, **{cache_kw: past})
        past = getattr(out, cache_kw)
        return out.logits[0, -1].float().cpu().numpy()

    with torch.inference_mode():
        return masked_completion(forward, prompt_ids, token_strings=token_strings, eos_id=eos_id,
                                 rng=np.random.default_rng(int(seed) % 2**64), max_new_tokens=max_new_tokens,
                                 temperature=temperature, grammar=grammar, stop=stop, constraint=constraint)


def sample_levels(
    model: Any,
    prompt_ids: list[int],
    spec: dict[str, Any],
    n: int,
    *,
    token_strings: list[str],
    eos_id: int,
    seed: int,
    temperature: float = 1.0,
    row_stride: int | None = None,
) -> list[SampleResult]:
    """Sample ``n`` masked level completions for one spec in a single batch.

    Every completion of a spec has the same length and the same structural
    positions, so the rows stay aligned without padding: each step feeds one
    token per row (or a run of tokens forced in every row at once).
    """
    import torch

    table = _CharTable(token_strings, eos_id)
    gen = torch.Generator().manual_seed(int(seed))
    device = next(iter(model.parameters()), torch.empty(0)).device
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    grammars = [LevelGrammar(spec, row_stride=row_stride) for _ in range(n)]
    results = [SampleResult(text="", token_ids=[], stopped="grammar") for _ in range(n)]
    pending = [list(prompt_ids) for _ in range(n)]
    past = None
    vocab = len(token_strings)
    with torch.inference_mode():
        while not grammars[0].done:
            runs = [g.forced_run() for g in grammars]
            common = min(len(r) for r in runs)
            if common:
                for g, r, res, pend in zip(grammars, runs, results, pending, strict=True):
                    chunk = r[:common]
                    for c in chunk:
                        g.feed(c)
                    ids = [table.char_to_id[c] for c in chunk]
                    res.token_ids += ids
                    res.forced_tokens += common
                    pend += ids
                continue
            inp = torch.tensor(pending, dtype=torch.long, device=device)
            out = model(input_ids=inp, use_cache=True, logits_to_keep=1, **{cache_kw: past})
            past = getattr(out, cache_kw)
            logits = out.logits[:, -1, :vocab].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            mask = torch.full_like(logits, -math.inf)
            free = []
            for row, g in enumerate(grammars):
                allowed = table.ids(g.allowed())
                mask[row, allowed] = 0.0
                free.append(len(allowed) > 1)
            scores = logits + mask
            if temperature <= 0:
                choice = torch.argmax(scores, dim=-1)
            else:
                choice = torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1, generator=gen)[:, 0]
            pending = []
            for row, (g, res) in enumerate(zip(grammars, results, strict=True)):
                c = int(choice[row])
                g.feed(table.id_to_str[c])
                res.token_ids.append(c)
                res.forward_passes += 1
                if free[row]:
                    res.free_logprobs.append(float(logprobs[row, c]))
                else:
                    res.forced_tokens += 1
                pending.append([c])
    for res, g in zip(results, grammars, strict=True):
        res.text = "".join(table.id_to_str[i] for i in res.token_ids)
        res.placements = list(g.placements)
    return results


# ------------------------------------------------------------- retry loop


@dataclass
class LevelAttempts:
    """What :func:`generate_valid_level` tried: the chosen output and every attempt's verdict."""

    output: Any  #: the StudentOutput kept (the first valid one, else the last)
    valid: bool
    attempts: int
    report: Any = None  #: the ValidationReport of the kept output, when the validator ran
    failures: list[str] = field(default_factory=list)


def generate_valid_level(
    generate: Callable[[int], Any],
    spec: Any,
    *,
    seed: int,
    max_tries: int = 5,
    deadline: float | None = None,
    validate: Callable[[Any, Any], Any] | None = None,
) -> LevelAttempts:
    """Sample until a level validates, judging at most ``max_tries`` candidates.

    ``generate(seed')`` returns one StudentOutput or a list of them (a batch);
    each candidate's ``result`` (a level dict or None) is checked with
    ``validate(result, spec)`` (default:
    :func:`generator.validation.validate_level`) in order, and the first valid
    one wins.  Calls use seeds ``seed``, ``seed + 1``, ... so a retry is a
    different sample.  Stops early when ``deadline`` (``time.monotonic()``)
    has passed after the first call.
    """
    if validate is None:
        from generator.validation import validate_level as validate
    last = None
    failures: list[str] = []
    report = None
    call = 0
    while len(failures) < max_tries:
        got = generate(seed + call)
        call += 1
        for out in got if isinstance(got, list) else [got]:
            if len(failures) >= max_tries:
                break
            last = out
            attempt = len(failures) + 1
            if out.result is None:
                failures.append(f"attempt {attempt}: {out.error or 'not decodable'}")
                continue
            report = validate(out.result, spec)
            if report.valid:
                return LevelAttempts(out, True, attempt, report, failures)
            failures.append(f"attempt {attempt}: " + "; ".join(f.code for f in report.failures))
        if deadline is not None and time.monotonic() >= deadline:
            break
    return LevelAttempts(last, False, len(failures), report, failures)
