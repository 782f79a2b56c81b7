"""Local student inference: masked level decoding, int8, load errors, the backend."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from engine.core.content import ENEMY_KINDS, ITEM_KINDS, theme_enemy_kinds, theme_item_kinds  # noqa: E402
from engine.core.level import LevelSpec  # noqa: E402
from generator.errors import ModelLoadError  # noqa: E402
from generator.local.decoding import LevelGrammar, generate_valid_level  # noqa: E402
from generator.local.student import LocalStudent, StudentBackend  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


SPECS = [
    {"width": 16, "height": 12, "difficulty": 1, "enemies": 2, "items": 1, "theme": "crypt"},
    {"width": 18, "height": 13, "difficulty": 5, "enemies": 4, "items": 3, "theme": "cave"},
    {"width": 17, "height": 12, "difficulty": 9, "enemies": 0, "items": 0, "theme": "fortress"},
]


@pytest.fixture(scope="module")
def model_dir(tiny_student_dir):
    """An untrained micro-1m student: the worst case for what masking must guarantee."""
    return tiny_student_dir


@pytest.fixture(scope="module")
def student(model_dir):
    return LocalStudent.load(model_dir, quantize=None)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s['width']}x{s['height']}")
def test_masked_decoding_forces_the_shape_even_from_an_untrained_model(student, spec):
    out = student.generate({"spec": spec}, seed=3)
    assert out.error is None
    level = out.result
    assert len(level["rows"]) == spec["height"]
    assert all(len(r) == spec["width"] for r in level["rows"])
    assert set(level["rows"][0]) == set(level["rows"][-1]) == {"#"}
    assert all(r[0] == r[-1] == "#" for r in level["rows"])
    assert len(level["enemies"]) == spec["enemies"] and len(level["items"]) == spec["items"]
    assert {e["kind"] for e in level["enemies"]} <= set(theme_enemy_kinds(spec["theme"]))
    assert {i["kind"] for i in level["items"]} <= set(theme_item_kinds(spec["theme"]))
    sx, sy = level["spawn"]["x"], level["spawn"]["y"]
    assert all(max(abs(e["x"] - sx), abs(e["y"] - sy)) > 4 for e in level["enemies"])
    things = [(sx, sy), (level["exit"]["x"], level["exit"]["y"])] + [(t["x"], t["y"]) for t in
                                                                   level["enemies"] + level["items"]]
    assert len(set(things)) == len(things)
    assert out.tokens == spec["height"] * (7 + spec["width"] + 1)
    assert out.mean_logprob < 0


def test_the_same_seed_gives_the_same_level(student):
    a = student.generate({"spec": SPECS[0]}, seed=11)
    b = student.generate({"spec": SPECS[0]}, seed=11)
    c = student.generate({"spec": SPECS[0]}, seed=12)
    assert a.text == b.text and a.text != c.text


def test_without_the_mask_an_untrained_model_writes_no_level(student):
    out = student.generate({"spec": SPECS[0]}, seed=3, masked=False, max_new_tokens=60)
    assert out.result is None and "level text" in out.error


def test_int8_student_loads_and_keeps_the_grammar(model_dir):
    import torch

    q = LocalStudent.load(model_dir, quantize="int8")
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in q.model.modules())
    out = q.generate({"spec": SPECS[1]}, seed=1)
    assert out.result is not None and len(out.result["rows"]) == SPECS[1]["height"]


def test_a_small_student_runs_on_one_thread_unless_told_otherwise(model_dir):
    import torch

    before = torch.get_num_threads()
    try:
        LocalStudent.load(model_dir, quantize=None)
        assert torch.get_num_threads() == 1
        LocalStudent.load(model_dir, quantize=None, threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_generic_site_output_that_is_not_json_is_reported(model_dir):
    s = LocalStudent.load(model_dir, quantize=None, site="app.story:write_quest#12345678")
    out = s.generate({"hero": "Ann"}, seed=0, max_new_tokens=20)
    assert out.result is None and out.error and out.tokens <= 20


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
         "model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "model.safetensors"),
        (lambda d: (d / "config.json").write_text("{oops"), "config.json"),
        (lambda d: (d / "tokenizer.json").write_text("[]"), "tokenizer.json"),
    ],
    ids=["no-weights", "no-tokenizer", "truncated-weights", "garbage-weights", "bad-config", "bad-tokenizer"],
)
def test_broken_model_files_raise_model_load_error_naming_the_file(model_dir, tmp_path, damage, named):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    damage(broken)
    with pytest.raises(ModelLoadError, match=named.replace(".", r"\.")):
        LocalStudent.load(broken, quantize=None)


def test_pickle_weights_are_never_read(model_dir, tmp_path):
    import shutil

    d = tmp_path / "pickled"
    shutil.copytree(model_dir, d)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="model.safetensors is missing"):
        LocalStudent.load(d)


def _fake_report(valid):
    return SimpleNamespace(valid=valid, failures=() if valid else (SimpleNamespace(code="V6.disconnected"),),
                           level=None)


def test_resampling_stops_at_the_first_valid_level():
    seeds = []

    def gen(seed):
        seeds.append(seed)
        return SimpleNamespace(result={"n": seed}, error=None)

    tried = generate_valid_level(gen, None, seed=10, max_tries=5, validate=lambda r, _s: _fake_report(r["n"] == 12))
    assert tried.valid and tried.attempts == 3 and seeds == [10, 11, 12]
    assert tried.failures == ["attempt 1: V6.disconnected", "attempt 2: V6.disconnected"]
    tried = generate_valid_level(gen, None, seed=0, max_tries=4, validate=lambda r, _s: _fake_report(False))
    assert not tried.valid and tried.attempts == 4
    past = time.monotonic() - 1
    tried = generate_valid_level(gen, None, seed=0, max_tries=4, deadline=past,
                                 validate=lambda r, _s: _fake_report(False))
    assert tried.attempts == 1


def test_student_backend_answers_a_request_with_confidence(model_dir):
    from generator.backends import Backend, BackendRequest

    calls = []

    def validate(result, spec):
        calls.append(result)
        return _fake_report(len(calls) == 2)

    backend = StudentBackend(model_dir, quantize="int8", validate=validate)
    assert isinstance(backend, Backend)
    out = backend.generate(BackendRequest(spec=LevelSpec(**SPECS[0]), seed=5))
    assert len(calls) == 2
    assert out.model == "student" and out.model_version == model_dir.name
    assert json.loads(out.raw)["rows"] == calls[1]["rows"]
    assert out.confidence is not None and out.confidence < 0
    assert out.completion_tokens > 0 and out.prompt_tokens > 0


def test_grammar_places_every_entity_before_the_grid_runs_out():
    spec = {"width": 16, "height": 12, "enemies": 30, "items": 20, "theme": "cave"}
    g = LevelGrammar(spec)
    # a model that always prefers walls: the grammar must still fit in 52 entities
    while not g.done:
        allowed = g.allowed()
        g.feed("#" if "#" in allowed else sorted(allowed)[0])
    assert g.enemies_left == 0 and g.items_left == 0 and g.spawn is not None and g.exit_placed
    assert {ENEMY_KINDS[k].glyph for k in theme_enemy_kinds("cave")} <= g.enemy_glyphs
    assert {ITEM_KINDS[k].glyph for k in theme_item_kinds("cave")} == g.item_glyphs


@pytest.mark.parametrize("prefer", ["walls-then-first", "walls-then-last"])
@pytest.mark.parametrize("theme", ["crypt", "cave", "fortress", "sewer"])
def test_grammar_fits_the_largest_counts_in_the_smallest_grid(prefer, theme):
    g = LevelGrammar({"width": 16, "height": 12, "enemies": 30, "items": 20, "theme": theme})
    while not g.done:
        allowed = sorted(g.allowed())
        g.feed("#" if "#" in allowed else (allowed[0] if prefer.endswith("first") else allowed[-1]))
    assert (g.enemies_left, g.items_left, g.spawn is not None, g.exit_placed) == (0, 0, True, True)


def test_grammar_random_walks_always_finish_with_every_entity_placed():
    import random

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(st.integers(16, 30), st.integers(12, 20), st.integers(0, 30), st.integers(0, 20),
           st.sampled_from(["crypt", "cave", "fortress", "sewer"]), st.integers(0, 10**6))
    def walk(w, h, e, i, theme, seed):
        rng = random.Random(seed)
        g = LevelGrammar({"width": w, "height": h, "enemies": e, "items": i, "theme": theme})
        while not g.done:
            allowed = sorted(g.allowed())
            g.feed("#" if "#" in allowed and rng.random() < 0.7 else rng.choice(allowed))
        assert (g.enemies_left, g.items_left, g.spawn is not None, g.exit_placed) == (0, 0, True, True)

    walk()


def test_grammar_random_walks_leave_one_connected_walkable_region():
    import random

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from scipy import ndimage

    from generator.local.codec import ROW_PREFIX_LEN

    # a "model" that mostly wants walls is the hardest case: every region must still join up
    @settings(max_examples=60, deadline=None)
    @given(st.integers(16, 30), st.integers(12, 20), st.integers(0, 30), st.integers(0, 20),
           st.sampled_from([0.3, 0.6, 0.9]), st.integers(0, 10**6))
    def walk(w, h, e, i, wall_bias, seed):
        rng = random.Random(seed)
        g = LevelGrammar({"width": w, "height": h, "enemies": e, "items": i, "theme": "crypt"})
        text = []
        while not g.done:
            allowed = sorted(g.allowed())
            ch = "#" if "#" in allowed and rng.random() < wall_bias else rng.choice(allowed)
            g.feed(ch)
            text.append(ch)
        rows = [line[ROW_PREFIX_LEN:] for line in "".join(text).splitlines()]
        walkable = [[c != "#" for c in r] for r in rows]
        assert ndimage.label(walkable)[1] == 1

    walk()


def test_grammar_keeps_the_exit_away_from_the_spawn_when_there_is_room():
    import random

    # a "model" that wants the exit as early as possible, and one that wants the spawn first
    for first in (">", "@", "late"):
        for seed in range(30):
            rng = random.Random(seed)
            w, h = rng.randint(16, 24), rng.randint(12, 16)
            g = LevelGrammar({"width": w, "height": h, "enemies": rng.randint(0, 6), "items": rng.randint(0, 4),
                              "theme": "cave"})
            exit_at = None
            while not g.done:
                allowed = g.allowed()
                # "late": entities only when the grammar insists (both end up crowded at the end)
                ch = first if first in allowed else ("." if "." in allowed else sorted(allowed)[0])
                if first == "late":
                    ch = next((c for c in ".#" if c in allowed), sorted(allowed)[0])
                if ch == ">":
                    exit_at = (g.pos - 7, g.y)
                g.feed(ch)
            assert g.spawn is not None and exit_at is not None
            if first != "late":
                assert max(abs(g.spawn[0] - exit_at[0]), abs(g.spawn[1] - exit_at[1])) >= g.exit_distance


def test_a_model_that_leaves_everything_to_the_end_still_gets_a_far_exit():
    import random

    # no enemies (their spawn clearance may force the spawn early): the must-place rules alone
    # put the spawn while a far cell still comes and the exit on the last far cell
    for seed in range(60):
        rng = random.Random(seed)
        g = LevelGrammar({"width": rng.randint(16, 24), "height": rng.randint(12, 16), "enemies": 0,
                          "items": rng.randint(0, 4), "theme": "crypt"})
        exit_at = None
        while not g.done:
            allowed = g.allowed()
            ch = next((c for c in ".#" if c in allowed), sorted(allowed)[0])
            if ch == ">":
                exit_at = (g.pos - 7, g.y)
            g.feed(ch)
        assert max(abs(g.spawn[0] - exit_at[0]), abs(g.spawn[1] - exit_at[1])) >= g.exit_distance


def test_spawn_clearance_and_density_match_the_validator():
    from generator.local.decoding import DENSITY_RANGE, SPAWN_CLEARANCE
    from generator.validation import DENSITY_RANGE as GATE_DENSITY
    from generator.validation import SPAWN_SAFE_RADIUS

    assert SPAWN_CLEARANCE == SPAWN_SAFE_RADIUS
    assert DENSITY_RANGE == GATE_DENSITY


@pytest.mark.parametrize("prefer", ["#", "."])
def test_grammar_keeps_wall_density_in_the_gate_range(prefer):
    for w, h in ((16, 12), (64, 48), (30, 20)):
        g = LevelGrammar({"width": w, "height": h, "enemies": 3, "items": 2, "theme": "crypt"})
        walls = 0
        while not g.done:
            allowed = g.allowed()
            ch = prefer if prefer in allowed else sorted(allowed)[0]
            walls += ch == "#" and g.pos >= 7
            g.feed(ch)
        assert 0.10 <= walls / (w * h) <= 0.60


def test_masked_output_of_an_untrained_model_fails_only_gates_masking_cannot_force(student):
    from generator.validation import validate_level

    codes = set()
    for n, spec in enumerate(SPECS):
        out = student.generate({"spec": spec}, seed=n)
        codes |= {f.gate for f in validate_level(out.result, LevelSpec(**spec)).failures}
    assert codes <= {"V7"}  # only the wall density's lower bound can clash with the mask


def test_a_batch_of_levels_keeps_every_guarantee_and_differs(student):
    spec = SPECS[1]
    outs = student.generate_levels({"spec": spec}, 3, seed=4)
    assert len({o.text for o in outs}) == 3
    for o in outs:
        assert o.error is None
        assert [len(r) for r in o.result["rows"]] == [spec["width"]] * spec["height"]
        assert len(o.result["enemies"]) == spec["enemies"] and len(o.result["items"]) == spec["items"]
    again = student.generate_levels({"spec": spec}, 3, seed=4)
    assert [o.text for o in again] == [o.text for o in outs]


def test_sealed_empty_pockets_are_walled_up_but_occupied_ones_are_left():
    from generator.local.decoding import fill_unreachable_pockets

    rows = ["#" * 16] + ["#......#.......#"] * 3 + ["#......#########"] + ["#" + "." * 14 + "#"] * 6 + ["#" * 16]
    level = {"rows": rows, "spawn": {"x": 1, "y": 1}, "exit": {"x": 2, "y": 3}, "enemies": [], "items": []}
    fixed, filled = fill_unreachable_pockets(level)
    assert filled == 1 and fixed["rows"][1] == "#......#########" and level["rows"] is rows
    level["items"] = [{"kind": "potion", "x": 9, "y": 1}]
    assert fill_unreachable_pockets(level) == (level, 0)



def test_sentencepiece_vocabularies_map_to_plain_characters_for_masking():
    from tokenizers import Tokenizer, models

    from generator.local.prompting import token_texts

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "\u2581the": 4, "#": 5}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(["<s>", "</s>"])
    assert token_texts(tok) == ["<unk>", "<s>", "</s>", "\n", " the", "#"]


def _winding_level():
    """A teacher's level (rooms and corridors) whose exit was moved next to the spawn, as a small student might."""
    from generator.backends.procedural import generate_procedural

    level = json.loads(generate_procedural(LevelSpec(width=24, height=16, difficulty=3, enemies=3, items=2,
                                                     theme="crypt"), 11).to_json())
    sx, sy = level["spawn"]["x"], level["spawn"]["y"]
    taken = {(t["x"], t["y"]) for t in (*level["enemies"], *level["items"])} | {(sx, sy)}
    near = next((x, y) for dy in (-1, 0, 1) for dx in (-1, 0, 1) for x, y in [(sx + dx, sy + dy)]
                if level["rows"][y][x] != "#" and (x, y) not in taken)
    level["exit"] = {"x": near[0], "y": near[1]}
    return level


def test_the_exit_goes_to_the_far_end_of_the_walk_from_the_models_spawn_and_the_level_stays_valid():
    from engine.core.content import WALKABLE
    from engine.core.level import Level
    from engine.core.pathing import critical_path_length, dijkstra
    from generator.local.decoding import place_spawn_and_exit
    from generator.validation import validate_level

    before = _winding_level()
    assert validate_level(before).valid
    after = place_spawn_and_exit(before)
    lv_before, lv_after = Level.from_json(json.dumps(before)), Level.from_json(json.dumps(after))
    walk = WALKABLE[lv_after.grid]
    par_before = critical_path_length(walk, lv_before.spawn, lv_before.exit)
    par_after = critical_path_length(walk, lv_after.spawn, lv_after.exit)
    assert par_before == 1 and par_after >= 20, (par_before, par_after)
    assert after["spawn"] == before["spawn"]  # the model's spawn stays where it chose
    steps = dijkstra(walk.astype("int8"), [lv_after.spawn], 1, 0)
    farthest = max(int(steps[y, x]) for y in range(walk.shape[0]) for x in range(walk.shape[1])
                   if walk[y, x] and steps[y, x] < 2**31 - 1
                   and (x, y) not in {(t["x"], t["y"]) for t in (*after["enemies"], *after["items"])})
    assert int(steps[lv_after.exit[1], lv_after.exit[0]]) == farthest
    assert validate_level(after).valid  # grid, enemies and items untouched
    assert (after["rows"], after["enemies"], after["items"]) == (before["rows"], before["enemies"], before["items"])
    assert place_spawn_and_exit(after) == after  # already the farthest: nothing moves


def test_the_exit_never_lands_on_a_thing():
    from generator.local.decoding import place_spawn_and_exit

    level = _winding_level()
    after = place_spawn_and_exit(level)
    far = (after["exit"]["x"], after["exit"]["y"])
    level["items"] = [*level["items"], {"kind": "potion", "x": far[0], "y": far[1]}]  # a thing on the far cell
    moved = place_spawn_and_exit(level)
    taken = {(t["x"], t["y"]) for t in (*moved["enemies"], *moved["items"])}
    assert (moved["exit"]["x"], moved["exit"]["y"]) not in taken and moved["spawn"] == level["spawn"]


def test_unreadable_or_disconnected_levels_are_left_to_the_validator():
    from generator.local.decoding import place_spawn_and_exit

    assert place_spawn_and_exit({"rows": None}) == {"rows": None}
    sealed = _winding_level()
    sx, sy = sealed["spawn"]["x"], sealed["spawn"]["y"]
    rows = [list(r) for r in sealed["rows"]]
    for dy in (-1, 0, 1):  # wall the spawn in: the exit cannot be reached
        for dx in (-1, 0, 1):
            if (dx, dy) != (0, 0):
                rows[sy + dy][sx + dx] = "#"
    sealed["rows"] = ["".join(r) for r in rows]
    sealed["exit"] = {"x": 20, "y": 13}
    assert place_spawn_and_exit(sealed) == sealed
