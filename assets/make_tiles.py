"""Draw the sample game's 16x16 tiles with Pillow and write them as PNGs.

Every picture here is original to Dungeon Forge: terrain is textured from a
seeded random generator with a palette per theme, actors and items are 8x8
pixel patterns (below) doubled to 16x16 and given a dark outline so they read
against any floor.  Re-run after changing a pattern or palette::

    python -m assets.make_tiles            # writes assets/tiles/*.png
    python -m assets.make_tiles --out DIR  # somewhere else

File names are the contract with ``engine.picture.tiles``:
``<theme>_<floor|wall|door|exit>.png``, ``player.png``, ``enemy_<kind>.png``,
``item_<kind>.png``, ``enemy_unknown.png``, ``item_unknown.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

TILE = 16
OUTLINE = (16, 12, 20, 255)

# --------------------------------------------------------------- terrain palettes

#: theme -> (floor base, floor speck, wall face, wall mortar, wall light, door wood, door frame)
PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "crypt": {
        "floor": (46, 42, 56), "speck": (62, 56, 74), "wall": (122, 112, 138),
        "mortar": (70, 62, 84), "light": (156, 146, 172), "wood": (118, 74, 40), "frame": (84, 76, 98),
    },
    "cave": {
        "floor": (58, 44, 34), "speck": (78, 60, 44), "wall": (132, 100, 68),
        "mortar": (86, 62, 42), "light": (168, 132, 92), "wood": (104, 66, 30), "frame": (92, 68, 46),
    },
    "fortress": {
        "floor": (62, 62, 66), "speck": (80, 80, 86), "wall": (160, 160, 170),
        "mortar": (96, 96, 106), "light": (196, 196, 206), "wood": (134, 86, 44), "frame": (110, 110, 120),
    },
    "sewer": {
        "floor": (38, 54, 46), "speck": (52, 74, 60), "wall": (86, 118, 96),
        "mortar": (52, 74, 60), "light": (116, 150, 122), "wood": (96, 70, 40), "frame": (64, 88, 72),
    },
}

# -------------------------------------------------------------------- sprites (8x8)
# '.' is transparent; other letters index the sprite's own palette.

SPRITES: dict[str, tuple[list[str], dict[str, tuple[int, int, int]]]] = {
    "player": (
        ["..hhhh..",
         "..hffh..",
         "...ff...",
         "sbbbbbb.",
         "s.bbbb.w",
         "..bbbb.w",
         "..l..l..",
         "..l..l.."],
        {"h": (230, 230, 240), "f": (240, 196, 150), "b": (60, 130, 240), "l": (120, 80, 50),
         "s": (250, 220, 80), "w": (220, 220, 230)},
    ),
    "enemy_rat": (
        ["........",
         "........",
         ".....gg.",
         "..gggggr",
         ".ggggggg",
         "t.gggg..",
         "t.g..g..",
         ".tt....."],
        {"g": (150, 130, 112), "r": (230, 40, 40), "t": (220, 150, 150)},
    ),
    "enemy_bat": (
        ["........",
         "p......p",
         "pp.pp.pp",
         "pppppppp",
         "p.prrp.p",
         "...pp...",
         "........",
         "........"],
        {"p": (150, 80, 200), "r": (255, 230, 60)},
    ),
    "enemy_skeleton": (
        ["..www...",
         "..kwk...",
         "..www...",
         ".wwwww..",
         "w.w.w.w.",
         "..www...",
         "..w.w...",
         ".ww.ww.."],
        {"w": (240, 236, 220), "k": (30, 30, 30)},
    ),
    "enemy_zombie": (
        ["..ggg...",
         "..rgr...",
         "..ggg...",
         "cccccggg",
         "gcccc...",
         ".cccc...",
         ".c..c...",
         ".g..g..."],
        {"g": (130, 170, 90), "r": (200, 30, 30), "c": (110, 90, 120)},
    ),
    "enemy_goblin": (
        ["........",
         "g.ggg.g.",
         ".gygyg..",
         "..ggg...",
         ".bbbbb..",
         "g.bbb.gd",
         "..g.g..d",
         ".gg.gg.."],
        {"g": (120, 220, 60), "y": (255, 240, 0), "b": (140, 90, 40), "d": (200, 200, 210)},
    ),
    "enemy_spider": (
        ["........",
         "l.l..l.l",
         ".l.kk.l.",
         "..kkkk..",
         "lkrkkrkl",
         "..kkkk..",
         ".l.kk.l.",
         "l.l..l.l"],
        {"k": (60, 40, 70), "l": (110, 80, 120), "r": (255, 40, 40)},
    ),
    "enemy_slime": (
        ["........",
         "........",
         "...ss...",
         "..ssss..",
         ".swsswS.",
         ".ssssss.",
         "ssssssss",
         ".SSSSSS."],
        {"s": (60, 220, 200), "S": (30, 150, 140), "w": (255, 255, 255)},
    ),
    "enemy_knight": (
        ["...rr...",
         "..mmmr..",
         "..mkkm..",
         "..mmmm..",
         "mmmmmmmm",
         "y.mmmm.m",
         "..m..m..",
         ".mm..mm."],
        {"m": (170, 180, 200), "k": (30, 30, 40), "r": (220, 40, 40), "y": (250, 210, 60)},
    ),
    "enemy_orc": (
        ["..ggg...",
         ".gyggyg.",
         ".gwggwg.",
         "bbbbbbbb",
         "gbbbbbbg",
         "g.bbbb.a",
         "..g..g.a",
         ".gg..gg."],
        {"g": (60, 120, 50), "y": (255, 60, 0), "w": (250, 250, 230), "b": (110, 70, 40),
         "a": (170, 170, 180)},
    ),
    "enemy_unknown": (
        [".mmmmmm.",
         "mm....mm",
         ".....mm.",
         "....mm..",
         "...mm...",
         "........",
         "...mm...",
         "...mm..."],
        {"m": (255, 80, 200)},
    ),
    "item_potion": (
        ["...cc...",
         "...gg...",
         "...gg...",
         "..grrg..",
         ".grrrrg.",
         ".grwrrg.",
         ".grrrrg.",
         "..gggg.."],
        {"c": (150, 100, 60), "g": (200, 220, 240), "r": (230, 30, 60), "w": (255, 255, 255)},
    ),
    "item_treasure": (
        ["........",
         "........",
         "...yy...",
         "..yYYy..",
         ".yYyyYy.",
         "yyYyYyyy",
         "YyyYyyYy",
         "........"],
        {"y": (255, 210, 40), "Y": (200, 140, 20)},
    ),
    "item_scroll": (
        ["........",
         ".pppppp.",
         "pbbbbbbp",
         ".pkkkkp.",
         ".pppppp.",
         ".pkkkp..",
         "pbbbbbbp",
         ".pppppp."],
        {"p": (240, 226, 180), "b": (180, 150, 100), "k": (90, 70, 60)},
    ),
    "item_food": (
        ["........",
         ".....ww.",
         "....ww..",
         "..mmm...",
         ".mmmmm..",
         ".mMmmm..",
         "..mmm...",
         "........"],
        {"m": (200, 100, 60), "M": (240, 160, 120), "w": (245, 240, 230)},
    ),
    "item_unknown": (
        ["........",
         "...cc...",
         "..cccc..",
         ".cccccc.",
         ".cccccc.",
         "..cccc..",
         "...cc...",
         "........"],
        {"c": (255, 80, 200)},
    ),
}


def sprite_image(pattern: list[str], palette: dict[str, tuple[int, int, int]]) -> Image.Image:
    """An 8x8 pattern doubled to 16x16 with a one-pixel dark outline."""
    if len(pattern) != 8 or any(len(row) != 8 for row in pattern):
        raise ValueError("sprite patterns are 8 rows of 8 characters")
    small = np.zeros((8, 8, 4), dtype=np.uint8)
    for y, row in enumerate(pattern):
        for x, ch in enumerate(row):
            if ch != ".":
                small[y, x] = (*palette[ch], 255)
    big = small.repeat(2, axis=0).repeat(2, axis=1)
    solid = big[..., 3] > 0
    grown = solid.copy()
    grown[1:, :] |= solid[:-1, :]
    grown[:-1, :] |= solid[1:, :]
    grown[:, 1:] |= solid[:, :-1]
    grown[:, :-1] |= solid[:, 1:]
    big[grown & ~solid] = OUTLINE
    return Image.fromarray(big, "RGBA")


def _noise(rng: np.random.Generator, base: tuple[int, int, int], spread: int) -> np.ndarray:
    jitter = rng.integers(-spread, spread + 1, size=(TILE, TILE, 1))
    return np.clip(np.array(base, dtype=np.int16)[None, None, :] + jitter, 0, 255)


def floor_tile(theme: str, rng: np.random.Generator) -> Image.Image:
    pal = PALETTES[theme]
    px = _noise(rng, pal["floor"], 4)
    specks = rng.random((TILE, TILE)) < 0.08
    px[specks] = pal["speck"]
    # a faint seam on two edges makes a grid the eye can count steps on
    px[0, :] = np.clip(px[0, :] - 8, 0, 255)
    px[:, 0] = np.clip(px[:, 0] - 8, 0, 255)
    return _rgba(px)


def wall_tile(theme: str, rng: np.random.Generator) -> Image.Image:
    pal = PALETTES[theme]
    px = _noise(rng, pal["wall"], 10)
    if theme in ("crypt", "fortress", "sewer"):  # brickwork
        for y in (0, 4, 8, 12):
            px[y, :] = pal["mortar"]
            offset = 0 if (y // 4) % 2 == 0 else 4
            for x in range(offset, TILE, 8):
                px[y : y + 4, x] = pal["mortar"]
        px[1, :] = np.clip(px[1, :] + 20, 0, 255)
    else:  # rough rock: light top-left, shadowed bottom-right
        bumps = rng.random((TILE, TILE)) < 0.12
        px[bumps] = pal["mortar"]
        px[:2, :] = pal["light"]
        px[:, :2] = np.clip(px[:, :2] + 16, 0, 255)
    px[-1, :] = pal["mortar"]
    return _rgba(px)


def door_tile(theme: str, rng: np.random.Generator) -> Image.Image:
    pal = PALETTES[theme]
    px = np.asarray(floor_tile(theme, rng))[..., :3].astype(np.int16).copy()
    px[1:, 2:14] = _noise(rng, pal["wood"], 6)[1:, 2:14]
    for x in (5, 8, 11):
        px[1:, x] = np.clip(np.array(pal["wood"]) - 40, 0, 255)
    px[0:2, 1:15] = pal["frame"]
    px[:, 1] = pal["frame"]
    px[:, 14] = pal["frame"]
    px[8:10, 11:13] = (230, 200, 80)  # handle
    return _rgba(px)


def exit_tile(theme: str, rng: np.random.Generator) -> Image.Image:
    """Stairs going down, lit in gold so the goal is easy to spot."""
    px = np.asarray(floor_tile(theme, rng))[..., :3].astype(np.int16).copy()
    px[1:15, 1:15] = (20, 16, 24)
    for i, y in enumerate(range(2, 14, 3)):
        shade = 230 - i * 35
        px[y : y + 2, 2 + i * 2 : 14] = (shade, int(shade * 0.8), 60)
    px[1, 1:15] = (250, 210, 60)
    px[1:15, 1] = (250, 210, 60)
    px[14, 1:15] = (250, 210, 60)
    px[1:15, 14] = (250, 210, 60)
    return _rgba(px)


def _rgba(px: np.ndarray) -> Image.Image:
    out = np.empty((TILE, TILE, 4), dtype=np.uint8)
    out[..., :3] = px
    out[..., 3] = 255
    return Image.fromarray(out, "RGBA")


def all_tiles() -> dict[str, Image.Image]:
    """Every tile by file stem, drawn deterministically."""
    tiles: dict[str, Image.Image] = {}
    for i, theme in enumerate(PALETTES):
        rng = np.random.default_rng(1000 + i)
        tiles[f"{theme}_floor"] = floor_tile(theme, rng)
        tiles[f"{theme}_wall"] = wall_tile(theme, rng)
        tiles[f"{theme}_door"] = door_tile(theme, rng)
        tiles[f"{theme}_exit"] = exit_tile(theme, rng)
    for name, (pattern, palette) in SPRITES.items():
        tiles[name] = sprite_image(pattern, palette)
    return tiles


def write_tiles(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in all_tiles().items():
        path = out / f"{name}.png"
        image.save(path, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw Dungeon Forge's 16x16 tiles as PNG files.")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("tiles"),
                        help="output folder (default: assets/tiles beside this script)")
    args = parser.parse_args(argv)
    written = write_tiles(args.out)
    print(f"wrote {len(written)} tiles to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
