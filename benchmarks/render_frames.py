"""Frames per second of the headless renderer: SpriteList batching against per-tile draws.

Both sides draw the same 64x48 level (every tile revealed, enemies and items
placed, seeded) in the same headless window, one after the other in one run:

* ``batched``: the game's :class:`~engine.render.sprites.LevelSprites`, three
  ``SpriteList.draw`` calls per frame;
* ``per_tile``: the same sprites drawn one by one with ``arcade.draw_sprite``
  (what a naive renderer does);
* ``game_view``: a whole play frame (world, camera, HUD) of
  :class:`~engine.render.views.GameView` at zoom 2, with a turn played between frames.

Each frame ends with ``ctx.finish()`` so the GPU (here: llvmpipe on the CPU)
work is counted, not just the command submission.

    python -m benchmarks.render_frames --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("ARCADE_HEADLESS", "1")

import numpy as np  # noqa: E402

from engine.core.content import ENEMY_KINDS, ITEM_KINDS  # noqa: E402
from engine.core.level import Level, Placed  # noqa: E402

WIDTH, HEIGHT = 64, 48


def bench_level(seed: int) -> Level:
    """A seeded 64x48 cave-like level with 30 enemies and 20 items (not validated: drawing only)."""
    rng = np.random.default_rng(seed)
    grid = (rng.random((HEIGHT, WIDTH)) < 0.3).astype(np.uint8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 1
    floor = [(int(x), int(y)) for y, x in np.argwhere(grid == 0)]
    picks = rng.choice(len(floor), size=52, replace=False)
    spots = [floor[i] for i in picks]
    enemies = [Placed(list(ENEMY_KINDS)[i % len(ENEMY_KINDS)], *spots[i]) for i in range(30)]
    items = [Placed(list(ITEM_KINDS)[i % len(ITEM_KINDS)], *spots[30 + i]) for i in range(20)]
    return Level(name="bench", grid=grid, spawn=spots[50], exit=spots[51], enemies=enemies,
                 items=items, theme="crypt")


def _time_frames(draw, window, frames: int) -> list[float]:
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


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "frames": len(times),
        "fps": round(1000.0 / statistics.fmean(times), 1),
        "frame_ms_mean": round(statistics.fmean(times), 3),
        "frame_ms_p50": round(statistics.median(times), 3),
        "frame_ms_p95": round(p95, 3),
    }


def run(frames: int = 120, baseline_frames: int = 20, seed: int = 0) -> dict:
    from engine.render.arcade_import import arcade  # first: keeps arcade's notes off stdout
    from arcade.camera import Camera2D  # noqa: I001
    from engine.render.sprites import LevelSprites, TextureCache
    from engine.render.tiles import Tileset

    level = bench_level(seed)
    window = arcade.Window(WIDTH * 16, HEIGHT * 16, "render benchmark", visible=False)
    try:
        textures = TextureCache(Tileset.load())
        sprites = LevelSprites(level, textures)
        sprites.reveal_all()
        for sprite in [*sprites.things, *sprites.actors]:
            sprite.visible = True
        camera = Camera2D()
        camera.position = (sprites.world_width / 2, sprites.world_height / 2)
        every = [*sprites.terrain, *sprites.things, *sprites.actors]

        def batched() -> None:
            with camera.activate():
                sprites.draw()

        def per_tile() -> None:
            with camera.activate():
                for sprite in every:
                    arcade.draw_sprite(sprite, pixelated=True)

        result: dict = {
            "benchmark": "render_frames",
            "seed": seed,
            "level": f"{WIDTH}x{HEIGHT}",
            "sprites": len(every),
            "window": f"{window.width}x{window.height}",
            "renderer": str(window.ctx.info.RENDERER),
            "python": platform.python_version(),
            "arcade": arcade.version.VERSION,
            "batched": _summary(_time_frames(batched, window, frames)),
            "per_tile": _summary(_time_frames(per_tile, window, baseline_frames)),
        }
        result["speedup_batched_vs_per_tile"] = round(
            result["batched"]["fps"] / result["per_tile"]["fps"], 1
        )
        result["game_view"] = _game_view_frames(level, textures, window, frames)
        return result
    finally:
        window.close()


def _game_view_frames(level: Level, textures, window, frames: int) -> dict | None:
    """A real play frame: a turn of the rules, then sync + draw of world and HUD."""
    try:
        from engine.core.actions import Wait
        from engine.core.game import Game
    except ImportError:  # the rules core is optional for the drawing benchmark
        return None
    from engine.render.hud import LevelInfo
    from engine.render.views import GameView

    game = Game(level, seed=0)
    view = GameView(game, LevelInfo(level.name, level.theme), textures, window=window)
    window.show_view(view)

    def frame() -> None:
        if view.playing:
            view.act(Wait())
        view.on_update(1 / 60)
        view.on_draw()

    return _summary(_time_frames(frame, window, frames))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames timed for batched and game view")
    parser.add_argument("--baseline-frames", type=int, default=20, help="frames timed for the per-tile baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.frames, args.baseline_frames, args.seed)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        b, p = result["batched"], result["per_tile"]
        print(f"{result['level']} level, {result['sprites']} sprites, {result['renderer']}")
        print(f"  batched (SpriteList): {b['fps']:8.1f} fps  p50 {b['frame_ms_p50']:.2f} ms  p95 {b['frame_ms_p95']:.2f} ms")
        print(f"  per-tile draw_sprite: {p['fps']:8.1f} fps  p50 {p['frame_ms_p50']:.2f} ms")
        print(f"  speedup: {result['speedup_batched_vs_per_tile']}x")
        if result["game_view"]:
            g = result["game_view"]
            print(f"  full play frame (turn + world + HUD): {g['fps']:.1f} fps  p95 {g['frame_ms_p95']:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
