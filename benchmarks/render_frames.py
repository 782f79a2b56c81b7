"""Frame times of the headless renderer on an 80x50 level, with baselines in the same run.

``python -m benchmarks.render_frames --json`` prints one JSON object with:

* ``play``: full play frames of the real :class:`~engine.render.views.GameView`
  (a turn of the rules, sprites, fog of war, camera at zoom 2, HUD) in a
  1024x720 window, the game's default size.  ``play.frame_ms_p50`` /
  ``play.frame_ms_p95`` use the cached tile layer (the game's default);
  ``play.baseline_*`` the same frames with one terrain sprite per tile
  (``terrain="sprites"``, the renderer before the tile layer), played in
  alternating blocks so both see the same machine load; ``play.speedup_p50`` /
  ``play.speedup_p95`` are the ratios; ``play.idle_*`` are frames with no
  turn (what most frames of a real game are).  ``benchmarks.engine``
  reports these figures as its ``frame_ms_*`` keys.
* ``whole_level``: the whole level revealed in a 1280x800 window, no turns:
  the tile layer, the terrain as a ``SpriteList``, and the per-sprite
  ``arcade.draw_sprite`` loop a naive renderer would use.

A frame is: the player's action applied through ``GameView.act`` (the
explorer bot chooses it before the clock starts, as a key press would), the
view's ``on_update`` and ``on_draw``, then ``ctx.finish()`` so the GPU work
(here: Mesa llvmpipe on the CPU) is counted, not just its submission.
Seeded: the level, the game and the bot.  The player is given enough HP to
keep playing; when the level is over a new game starts (not timed).

With ``--play-only`` only the play frames are measured (what
``benchmarks.engine`` runs, in a child process).  When no headless window can
be opened, the JSON says why (``render_error``) instead of failing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("ARCADE_HEADLESS", "1")

import numpy as np  # noqa: E402

from engine.core.content import ENEMY_KINDS, ITEM_KINDS  # noqa: E402
from engine.core.level import Level, Placed  # noqa: E402

LEVEL_W, LEVEL_H = 80, 50
PLAY_WINDOW = (1024, 720)  # games.sample_dungeon's default window
PLAY_ZOOM = 2.0


def bench_level(seed: int, width: int = LEVEL_W, height: int = LEVEL_H, *, enemies: int = 40,
                items: int = 25, theme: str = "crypt") -> Level:
    """A seeded dungeon of rooms (tcod BSP) joined by corridors, with enemies and items on the floor.

    Larger than a ``LevelSpec`` allows (64x48 at most), so it is built here; it
    is connected but not validated: it is for drawing and playing.

    >>> level = bench_level(0)
    >>> level.grid.shape, len(level.enemies), len(level.items)
    ((50, 80), 40, 25)
    """
    import tcod.bsp
    import tcod.random

    rng = np.random.default_rng(seed)
    grid = np.ones((height, width), dtype=np.uint8)
    bsp = tcod.bsp.BSP(x=1, y=1, width=width - 2, height=height - 2)
    bsp.split_recursive(depth=6, min_width=7, min_height=6, max_horizontal_ratio=1.6,
                        max_vertical_ratio=1.6, seed=tcod.random.Random(seed=seed))
    centres = []
    for node in bsp.inverted_level_order():
        if node.children:
            continue
        rw, rh = int(rng.integers(4, node.width)), int(rng.integers(3, node.height))
        rx = node.x + int(rng.integers(0, node.width - rw + 1))
        ry = node.y + int(rng.integers(0, node.height - rh + 1))
        grid[ry:ry + rh, rx:rx + rw] = 0
        centres.append((rx + rw // 2, ry + rh // 2))
    for (ax, ay), (bx, by) in zip(centres, centres[1:], strict=False):
        grid[ay, min(ax, bx):max(ax, bx) + 1] = 0
        grid[min(ay, by):max(ay, by) + 1, bx] = 0
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 1
    floor = np.argwhere(grid == 0)
    floor = floor[[tuple(p[::-1]) not in (centres[0], centres[-1]) for p in floor]]
    picks = rng.choice(len(floor), size=enemies + items, replace=False)
    spots = [(int(floor[i][1]), int(floor[i][0])) for i in picks]
    ek, ik = list(ENEMY_KINDS), list(ITEM_KINDS)
    return Level(name=f"bench-{width}x{height}-s{seed}", grid=grid, spawn=centres[0], exit=centres[-1],
                 enemies=[Placed(ek[i % len(ek)], *spots[i]) for i in range(enemies)],
                 items=[Placed(ik[i % len(ik)], *spots[enemies + i]) for i in range(items)], theme=theme)


# -- timing helpers ------------------------------------------------------------------


def summary(times: list[float]) -> dict[str, float]:
    """fps, mean, p50 and p95 (nearest rank) of frame times in ms."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "frames": len(times),
        "fps": round(1000.0 / statistics.fmean(times), 1),
        "frame_ms_mean": round(statistics.fmean(times), 3),
        "frame_ms_p50": round(statistics.median(times), 3),
        "frame_ms_p95": round(p95, 3),
    }


def _time_frames(draw: Callable[[], None], window: Any, frames: int) -> list[float]:
    draw()
    window.ctx.finish()  # warm-up: uploads textures and buffers
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        window.clear()
        draw()
        window.ctx.finish()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def open_window(width: int, height: int) -> Any:
    """A hidden headless arcade window (raises whatever arcade raises when it cannot)."""
    from engine.render.arcade_import import arcade  # first: keeps arcade's notes off stdout

    return arcade.Window(width, height, "render benchmark", visible=False)


def _window_error(exc: BaseException) -> str:
    return (f"no headless window: {type(exc).__name__}: {exc}".strip()
            + " (needs EGL, e.g. Mesa's libEGL/llvmpipe, and ARCADE_HEADLESS=1)")


# -- play frames ---------------------------------------------------------------------


class _Player:
    """One GameView playing the bench level with a seeded bot; restarts (untimed) when the level ends."""

    def __init__(self, level: Level, textures: Any, window: Any, terrain: str, seed: int) -> None:
        self.level, self.textures, self.window, self.terrain, self.seed = level, textures, window, terrain, seed
        self.games = 0
        self._new_game()

    def _new_game(self) -> None:
        from engine.core.bots import make_bot
        from engine.core.game import Game, RulesConfig
        from engine.render.hud import LevelInfo
        from engine.render.views import GameView

        seed = self.seed + self.games
        self.games += 1
        self.game = Game(self.level, seed, config=RulesConfig(player_hp=1_000_000))
        self.bot = make_bot("explorer", seed)
        self.view = GameView(self.game, LevelInfo(self.level.name, self.level.theme, 1, "benchmark"),
                             self.textures, zoom=PLAY_ZOOM, terrain=self.terrain, window=self.window)

    def frames(self, n: int, *, turns: bool = True) -> list[float]:
        """Time ``n`` frames, each with a turn (``turns``) or none (the player is thinking)."""
        self.window.show_view(self.view)
        ctx = self.window.ctx
        times = []
        for _ in range(n):
            if not self.view.playing:
                self._new_game()
                self.window.show_view(self.view)
            action = self.bot.act(self.game) if turns else None  # the "key press", chosen before the clock
            t0 = time.perf_counter()
            if action is not None:
                self.view.act(action)
            self.view.on_update(1 / 60)
            self.view.on_draw()
            ctx.finish()
            times.append((time.perf_counter() - t0) * 1000.0)
        return times


def play_frames(window: Any, *, frames: int = 240, baseline_frames: int = 240, seed: int = 0,
                blocks: int = 6) -> dict[str, Any]:
    """Full GameView frames on the 80x50 level: tile layer against one-sprite-per-tile terrain.

    The two run in ``blocks`` alternating blocks (after one untimed warm-up
    block each), so a change in machine load hits both.
    """
    from engine.render.sprites import TextureCache
    from engine.picture.tiles import Tileset

    if min(frames, baseline_frames, blocks) < 1:
        raise ValueError("frames, baseline_frames and blocks must be at least 1")
    level = bench_level(seed)
    textures = TextureCache(Tileset.load())
    fast = _Player(level, textures, window, "layer", seed)
    slow = _Player(level, textures, window, "sprites", seed)
    fast.frames(20)
    slow.frames(20)

    def alternate(n_fast: int, n_slow: int, turns: bool) -> tuple[list[float], list[float]]:
        t_fast: list[float] = []
        t_slow: list[float] = []
        for b in range(blocks):
            t_fast += fast.frames(n_fast // blocks + (b < n_fast % blocks), turns=turns)
            t_slow += slow.frames(n_slow // blocks + (b < n_slow % blocks), turns=turns)
        return t_fast, t_slow

    t_fast, t_slow = alternate(frames, baseline_frames, True)
    opt, base = summary(t_fast), summary(t_slow)
    i_fast, i_slow = alternate(max(blocks, frames // 2), max(blocks, baseline_frames // 2), False)
    idle_fast, idle_slow = summary(i_fast), summary(i_slow)
    return {
        "level": f"{LEVEL_W}x{LEVEL_H}",
        "level_tiles": LEVEL_W * LEVEL_H,
        "window": f"{window.width}x{window.height}",
        "zoom": PLAY_ZOOM,
        "renderer": str(window.ctx.info.RENDERER),
        **opt,
        **{f"baseline_{k}": v for k, v in base.items()},
        "baseline": "terrain='sprites' (one sprite per tile, fog as sprite tints)",
        "speedup_p50": round(base["frame_ms_p50"] / opt["frame_ms_p50"], 2),
        "speedup_p95": round(base["frame_ms_p95"] / opt["frame_ms_p95"], 2),
        # frames with no turn (the camera settles, nothing is uploaded): most frames of a real game
        "idle_frame_ms_p50": idle_fast["frame_ms_p50"],
        "idle_frame_ms_p95": idle_fast["frame_ms_p95"],
        "baseline_idle_frame_ms_p50": idle_slow["frame_ms_p50"],
        "baseline_idle_frame_ms_p95": idle_slow["frame_ms_p95"],
        "games_started": fast.games + slow.games,
    }


def measure_play_subprocess(*, frames: int = 240, baseline_frames: int = 240, seed: int = 0,
                            timeout_s: float = 300.0) -> dict[str, Any]:
    """:func:`play_frames` in a child process with its own headless window (arcade allows one
    window per process, and a GL driver that crashes must not take the caller down).

    Returns the ``play`` dict, or ``{"render_error": why}`` when no window opens or the child fails.
    """
    cmd = [sys.executable, "-m", "benchmarks.render_frames", "--json", "--play-only",
           "--frames", str(frames), "--baseline-frames", str(baseline_frames), "--seed", str(seed)]
    env = {**os.environ, "ARCADE_HEADLESS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"render_error": f"render benchmark took more than {timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        data = json.loads(lines[-1])
        return data["play"] if "play" in data else {"render_error": data.get("render_error", "no play frames")}
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    return {"render_error": f"render benchmark failed ({how}): {tail or 'no output'}"}


# -- whole level: draw paths compared --------------------------------------------------


def whole_level_frames(window: Any, *, frames: int = 120, baseline_frames: int = 20,
                       seed: int = 0) -> dict[str, Any]:
    """The whole revealed terrain (plus exit and player), no turns: tile layer vs terrain SpriteList
    vs one ``arcade.draw_sprite`` call per sprite."""
    from engine.render.arcade_import import arcade
    from arcade.camera import Camera2D  # noqa: I001
    from engine.render.sprites import LevelSprites, TextureCache
    from engine.picture.tiles import Tileset

    level = bench_level(seed)
    textures = TextureCache(Tileset.load())
    layer = LevelSprites(level, textures)
    sprites = LevelSprites(level, textures, terrain="sprites")
    for drawn in (layer, sprites):
        drawn.reveal_all()  # terrain, the exit and the player (no game: no enemies or items)
    camera = Camera2D()
    camera.position = (layer.world_width / 2, layer.world_height / 2)
    every = [*sprites.terrain, *sprites.things, *sprites.actors]

    def with_camera(draw: Callable[[], None]) -> Callable[[], None]:
        def frame() -> None:
            with camera.activate():
                draw()
        return frame

    def per_sprite() -> None:
        for spr in every:
            arcade.draw_sprite(spr, pixelated=True)

    out: dict[str, Any] = {
        "level": f"{LEVEL_W}x{LEVEL_H}",
        "sprites_per_tile_path": len(every),
        "window": f"{window.width}x{window.height}",
        "tile_layer": summary(_time_frames(with_camera(layer.draw), window, frames)),
        "sprite_list": summary(_time_frames(with_camera(sprites.draw), window, frames)),
        "per_sprite": summary(_time_frames(with_camera(per_sprite), window, baseline_frames)),
    }
    for name in ("tile_layer", "sprite_list"):
        out[f"speedup_{name}_vs_per_sprite"] = round(
            out["per_sprite"]["frame_ms_p50"] / out[name]["frame_ms_p50"], 1)
    return out


def run(frames: int = 240, baseline_frames: int = 240, seed: int = 0, *, play_only: bool = False,
        whole_frames: int = 120, per_sprite_frames: int = 20) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "render_frames", "seed": seed, "python": platform.python_version()}
    try:
        window = open_window(*PLAY_WINDOW)
    except Exception as exc:  # noqa: BLE001
        result["render_error"] = _window_error(exc)
        return result
    try:
        from engine.render.arcade_import import arcade

        result["arcade"] = arcade.version.VERSION
        result["renderer"] = str(window.ctx.info.RENDERER)
        result["play"] = play_frames(window, frames=frames, baseline_frames=baseline_frames, seed=seed)
        if not play_only:
            window.set_size(LEVEL_W * 16, LEVEL_H * 16)
            result["whole_level"] = whole_level_frames(window, frames=whole_frames,
                                                       baseline_frames=per_sprite_frames, seed=seed)
        return result
    finally:
        window.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render_frames",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="play frames timed with the tile layer")
    parser.add_argument("--baseline-frames", type=int, default=240,
                        help="play frames timed with one sprite per tile (baseline)")
    parser.add_argument("--play-only", action="store_true", help="only the play frames (no whole-level comparison)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.frames, args.baseline_frames, args.seed, play_only=args.play_only)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if "render_error" in result:
        print(result["render_error"])
        return 0
    p = result["play"]
    print(f"{p['level']} level, window {p['window']} at zoom {p['zoom']}, {result['renderer']}")
    print(f"  play frame, tile layer:     p50 {p['frame_ms_p50']:6.2f} ms  p95 {p['frame_ms_p95']:6.2f} ms")
    print(f"  play frame, tile sprites:   p50 {p['baseline_frame_ms_p50']:6.2f} ms  "
          f"p95 {p['baseline_frame_ms_p95']:6.2f} ms")
    print(f"  speedup: p50 {p['speedup_p50']}x  p95 {p['speedup_p95']}x")
    print(f"  frames without a turn: p50 {p['idle_frame_ms_p50']:.2f} ms (baseline {p['baseline_idle_frame_ms_p50']:.2f} ms)")
    if "whole_level" in result:
        w = result["whole_level"]
        for name in ("tile_layer", "sprite_list", "per_sprite"):
            print(f"  whole level, {name:12s} p50 {w[name]['frame_ms_p50']:8.2f} ms  "
                  f"p95 {w[name]['frame_ms_p95']:8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
