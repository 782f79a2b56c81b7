"""The student's compact text form: lossless round trips and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.content import ENEMY_KINDS, ITEM_KINDS
from generator.local.codec import (
    ROW_PREFIX_LEN,
    CodecError,
    decode_result,
    encode_completion,
    encode_example,
    encode_prompt,
    is_level_site,
)

LEVEL_SITE = "jac.levels:design_level#00000000"


@st.composite
def levels(draw):
    w = draw(st.integers(16, 40))
    h = draw(st.integers(12, 30))
    rows = [["#"] * w for _ in range(h)]
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            rows[y][x] = draw(st.sampled_from(".....#+")) if x % 7 else "."
    floor = [(x, y) for y in range(1, h - 1) for x in range(1, w - 1) if rows[y][x] == "."]
    n_e = draw(st.integers(0, 6))
    n_i = draw(st.integers(0, 4))
    cells = draw(st.permutations(floor))[: 2 + n_e + n_i]
    (sx, sy), (ex, ey), *rest = cells
    enemies = [{"kind": draw(st.sampled_from(sorted(ENEMY_KINDS))), "x": x, "y": y} for x, y in rest[:n_e]]
    items = [{"kind": draw(st.sampled_from(sorted(ITEM_KINDS))), "x": x, "y": y} for x, y in rest[n_e:]]
    spec = {"width": w, "height": h, "difficulty": draw(st.integers(1, 10)), "enemies": n_e,
            "items": n_i, "theme": draw(st.sampled_from(["crypt", "cave", "fortress", "sewer"]))}
    level = {"name": "student", "width": w, "height": h, "rows": ["".join(r) for r in rows],
             "spawn": {"x": sx, "y": sy}, "exit": {"x": ex, "y": ey},
             "enemies": enemies, "items": items, "theme": spec["theme"]}
    return spec, level


def _canonical(level):
    key = lambda t: (t["y"], t["x"])  # noqa: E731 - the codec lists things in reading order
    return {**level, "enemies": sorted(level["enemies"], key=key), "items": sorted(level["items"], key=key)}


@settings(max_examples=60, deadline=None)
@given(levels())
def test_level_round_trip_is_lossless(case):
    spec, level = case
    text = encode_example(LEVEL_SITE, {"spec": spec}, level)
    assert decode_result(LEVEL_SITE, text) == _canonical(level)
    completion = encode_completion(LEVEL_SITE, {"spec": spec}, level)
    assert decode_result(LEVEL_SITE, completion, args={"spec": spec}) == _canonical(level)


@settings(max_examples=30, deadline=None)
@given(levels())
def test_level_rows_carry_what_is_left_to_place(case):
    spec, level = case
    lines = encode_completion(LEVEL_SITE, spec, level).splitlines()
    assert len(lines) == spec["height"]
    assert all(len(line) == ROW_PREFIX_LEN + spec["width"] for line in lines)
    assert lines[0][:ROW_PREFIX_LEN] == f"00{spec['enemies']:02d}{spec['items']:02d}3"
    last = lines[-1][:ROW_PREFIX_LEN]
    assert last[0:2] == f"{spec['height'] - 1:02d}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4),
       st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_generic_round_trip_is_lossless(args, result):
    site = "app.story:write_quest#12345678"
    text = encode_example(site, args, result)
    assert text.startswith(encode_prompt(site, args))
    assert text.count("\n") == 1 and text.endswith("\n")
    assert decode_result(site, text) == result


def test_a_call_reads_the_same_to_the_student_whatever_order_its_arguments_come_in():
    # The program passes (name, level, heads); a dataset's held-out arguments come back from JSON with sorted
    # keys.  Before, the two gave different prompts: a student with 20/20 right answers on its training
    # order was judged 8/20 on the reordered held-out prompts.
    site = "bounty_board:post_bounty#0f113f41"
    in_program_order = {"monster": {"name": "Ogre", "level": 7, "heads": 2}, "town": "Ashford"}
    reordered = {"town": "Ashford", "monster": {"heads": 2, "level": 7, "name": "Ogre"}}
    assert encode_prompt(site, in_program_order) == encode_prompt(site, reordered)
    result = {"title": "Slay the Ogre of Ashford", "reward": 330, "band": "high"}
    assert encode_example(site, reordered, result).endswith('{"title":"Slay the Ogre of Ashford","reward":330,'
                                                            '"band":"high"}\n')  # the answer keeps its order


def test_level_site_is_recognised_by_its_qualname_not_its_hash():
    assert is_level_site("jac.levels:design_level#deadbeef")
    assert is_level_site("level")
    assert not is_level_site("jac.levels:choose_next_spec#deadbeef")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("L 16x12 d1 e0 i0 crypt\n0000003####\n", "row 0 has 4 tiles"),
        ("nonsense", "header line"),
        ("L 16x12 d1 e0 i0 crypt\n0000003" + "#" * 16 + "\n", "row lines"),
        ("L 16x12 d1 e0 i0 crypt\n" + "".join(f"{y:02d}00003" + "#" * 16 + "\n" for y in range(12)), "spawn"),
        ("L 16x12 d1 e0 i0 crypt\n" + "".join(f"{y:02d}00003" + "#" * 15 + "Q\n" for y in range(12)), "unknown glyph"),
    ],
)
def test_malformed_level_text_says_where(text, where):
    with pytest.raises(CodecError, match=where):
        decode_result(LEVEL_SITE, text)


def test_malformed_generic_text_is_a_clear_error():
    with pytest.raises(CodecError, match="not JSON"):
        decode_result("a:b#1", '{"x":1}\t{"y":\n')
    with pytest.raises(CodecError, match="expected an object"):
        decode_result("a:b#1", "{}\t[1]\n")


def test_level_args_without_a_spec_are_refused():
    with pytest.raises(CodecError, match="expected a spec"):
        encode_prompt(LEVEL_SITE, {"width": 3})


def test_a_thing_on_a_door_keeps_its_place_and_the_door_becomes_floor():
    rows = ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16]
    rows[2] = "#.+" + "." * 12 + "#"
    level = {"name": "student", "width": 16, "height": 12, "rows": rows, "spawn": {"x": 1, "y": 1},
             "exit": {"x": 2, "y": 2}, "enemies": [], "items": [], "theme": "crypt"}
    spec = {"width": 16, "height": 12, "difficulty": 1, "enemies": 0, "items": 0, "theme": "crypt"}
    back = decode_result(LEVEL_SITE, encode_example(LEVEL_SITE, spec, level))
    assert back["exit"] == {"x": 2, "y": 2} and back["rows"][2][2] == "."
    level["exit"] = {"x": 0, "y": 0}
    with pytest.raises(CodecError, match="wall"):
        encode_example(LEVEL_SITE, spec, level)


def test_rows_padded_to_a_fixed_stride_put_the_tile_above_a_fixed_distance_back():
    from engine.core.level import LevelSpec
    from generator.backends.procedural import generate_procedural
    from generator.local.codec import ROW_PAD, encode_completion
    from generator.local.decoding import EOS, LevelGrammar

    for w, h in ((16, 12), (23, 14)):
        spec = {"width": w, "height": h, "difficulty": 3, "enemies": 2, "items": 1, "theme": "crypt"}
        level = generate_procedural(LevelSpec.from_dict(spec), seed=w).to_dict()
        text = encode_completion("level", {"spec": spec}, level, row_stride=24)
        lines = text.split("\n")[:-1]
        assert {len(line) for line in lines} == {7 + 24}
        assert all(line.endswith(ROW_PAD * (24 - w)) or w == 24 for line in lines)
        back = decode_result("level", text, args={"spec": spec})
        assert back["rows"] == level["rows"] and back["spawn"] == level["spawn"]
        grammar = LevelGrammar(spec, row_stride=24)  # the mask writes the same padding
        written = []
        while not grammar.done:
            allowed = grammar.allowed()
            ch = "." if "." in allowed else sorted(allowed)[0]
            grammar.feed(ch)
            written.append(ch)
        assert grammar.allowed() == {EOS}
        assert {len(line) for line in "".join(written).split("\n")[:-1]} == {7 + 24}
        assert decode_result("level", "".join(written), args={"spec": spec})["width"] == w
