"""Agreement: a student's answer against the teacher's answer to the same call, field by field."""

from __future__ import annotations

import pytest

from generator.store.callsite import LEVEL_SITE
from generator.errors import ConfigError
from generator.evaluate.agreement import AgreementStats, JudgeConfig, JudgeSpec, compare, default_mode

BOUNTY_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "Bounty", "schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "reward": {"type": "integer"},
                       "band": {"type": "string", "enum": ["low", "medium", "high", "deadly"]},
                       "odds": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}},
                       "loot": {"type": "array", "items": {"$ref": "#/$defs/Loot"}},
                       "cursed": {"type": "boolean"}},
        "$defs": {"Loot": {"type": "object", "properties": {"item": {"type": "string"}, "gold": {"type": "integer"}}}},
    }},
}
TEACHER = {"title": "Slay the Ogre of Greyhollow", "reward": 330, "band": "high", "odds": 0.25,
           "tags": ["ogre", "swamp"], "loot": [{"item": "club", "gold": 5}], "cursed": False}
FIELDS = JudgeSpec("fields")


def _with(**changes):
    return {**TEACHER, **changes}


def test_the_same_answer_agrees_on_every_field_even_with_cosmetic_differences():
    student = _with(title="  slay the OGRE of greyhollow.", odds=0.2501)
    c = compare(student, TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    assert c.agree and c.disagreeing() == []
    assert set(c.fields) == {"title", "reward", "band", "odds", "tags", "loot", "loot[].item", "loot[].gold", "cursed"}
    assert c.fields["title"].similarity == 1.0


@pytest.mark.parametrize("field, value", [
    ("title", "Slay the Oulem of Greyhollow"),  # a similar but different monster
    ("reward", 331), ("band", "HIGH"), ("odds", 0.3), ("cursed", True), ("tags", ["ogre"]),
    ("tags", ["ogre", "swamps"]),
])
def test_one_wrong_field_makes_the_whole_answer_disagree_and_is_named(field, value):
    c = compare(_with(**{field: value}), TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    assert not c.agree
    assert c.disagreeing() == [field]


def test_nested_objects_in_lists_are_compared_per_field():
    c = compare(_with(loot=[{"item": "club", "gold": 6}]), TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    assert not c.agree and set(c.disagreeing()) == {"loot", "loot[].gold"}


def test_an_enum_is_exact_even_where_a_string_would_be_normalised():
    c = compare(_with(band="high "), TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    assert c.disagreeing() == ["band"]


def test_int_float_and_bool_types_are_not_confused():
    assert not compare({"n": True}, {"n": 1}).agree
    assert compare({"n": 2.0}, {"n": 2}, schema={"type": "object", "properties": {"n": {"type": "integer"}}}).agree
    assert not compare({"n": 2.5}, {"n": 2}, schema={"type": "object", "properties": {"n": {"type": "integer"}}}).agree
    assert compare({"x": 100.5}, {"x": 100.0}).agree  # within 1 % (inferred float)
    assert not compare({"x": 100.5}, {"x": 100.0}, spec=JudgeSpec("fields", float_tolerance=0.001)).agree


def test_no_answer_disagrees_on_every_field_of_the_teachers_answer():
    c = compare(None, TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    assert not c.agree
    assert {"title", "reward", "band", "loot[].item"} <= set(c.disagreeing())


def test_missing_and_extra_keys_disagree():
    c = compare({"title": TEACHER["title"], "reward": 330, "band": "high", "bonus": 1},
                {"title": TEACHER["title"], "reward": 330, "band": "high", "odds": 0.5})
    assert not c.agree and set(c.disagreeing()) == {"bonus", "odds"}


def test_exact_mode_does_not_normalise_and_similarity_mode_accepts_close_strings():
    student = _with(title="slay the ogre of greyhollow")
    assert compare(student, TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS).agree
    assert not compare(student, TEACHER, schema=BOUNTY_SCHEMA, spec=JudgeSpec("exact")).agree
    near = "an old silent pond / a frog jumps in / splash"
    far = "the moon over the bay"
    sim = JudgeSpec("similarity", min_similarity=0.85)
    assert compare(near + "!", near, spec=sim).agree
    c = compare(far, near, spec=sim)
    assert not c.agree and c.fields["$"].similarity < 0.5


def test_statistics_give_wilson_bounds_and_the_weakest_field():
    right = compare(TEACHER, TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    wrong_band = compare(_with(band="low"), TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    wrong_both = compare(_with(band="low", reward=1), TEACHER, schema=BOUNTY_SCHEMA, spec=FIELDS)
    stats = AgreementStats.of([right] * 27 + [wrong_band] * 2 + [wrong_both])
    assert (stats.n, stats.agree) == (30, 27) and stats.rate == pytest.approx(0.9)
    assert stats.lower95 == pytest.approx(0.7438, abs=1e-3)  # Wilson, not the normal approximation
    assert stats.weakest_field == "band" and stats.fields["band"].rate == pytest.approx(27 / 30)
    assert stats.fields["reward"].rate == pytest.approx(29 / 30)
    assert "band 0.90" in stats.describe()


def test_default_mode_follows_the_return_type():
    assert default_mode("m:f#1", BOUNTY_SCHEMA) == "fields"
    assert default_mode("m:f#1", {"type": "string", "enum": ["a", "b"]}) == "fields"
    assert default_mode("m:haiku#1", None, "an old pond") == "similarity"
    assert default_mode("m:n#1", {"type": "integer"}) == "fields"
    assert default_mode(LEVEL_SITE, {"type": "object"}) == "validity-only"


def test_forge_toml_sets_the_judge_per_site_and_rejects_typos(tmp_path):
    (tmp_path / "forge.toml").write_text(
        '[judge]\nfloat_tolerance = 0.05\n'
        '[judge.sites]\n"bounty_board:post_bounty" = "exact"\n'
        '[judge.sites."recipes:haiku_for"]\nmode = "validity-only"\n', encoding="utf-8")
    cfg = JudgeConfig.load(tmp_path)
    spec = cfg.for_site("bounty_board:post_bounty#0f113f41", BOUNTY_SCHEMA)
    assert spec.mode == "exact" and spec.float_tolerance == 0.05 and "forge.toml" in spec.source
    assert not cfg.for_site("recipes:haiku_for#abcdef12", None, "a haiku").compares
    other = cfg.for_site("recipes:invent_recipe#12345678", BOUNTY_SCHEMA)
    assert other.mode == "fields" and other.source.startswith("default")
    assert cfg.for_site(LEVEL_SITE).mode == "validity-only"  # levels keep validity, likeness and fun

    (tmp_path / "forge.toml").write_text('[judge.sites]\n"a:b" = "fuzzy"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'fuzzy' is not one of exact, fields, similarity, validity-only"):
        JudgeConfig.load(tmp_path)
    (tmp_path / "forge.toml").write_text('[judge]\nmin_similarty = 0.5\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown judge setting.*min_similarty"):
        JudgeConfig.load(tmp_path)
    (tmp_path / "forge.toml").write_text('[judge]\nmin_similarity = 2\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="min_similarity must be within"):
        JudgeConfig.load(tmp_path)


def _rec(**kw):
    from generator.store.records import CallRecord

    return CallRecord(site="bounty_board:post_bounty#0f113f41", output_schema=BOUNTY_SCHEMA, **kw)


def test_recorded_shadow_and_spot_check_answers_pair_with_the_teachers_answer_to_the_same_call():
    from generator.evaluate.agreement import SKIPPED, site_agreement

    args = {"monster": {"name": "Ogre"}, "town": "Ashford"}
    t1 = _rec(backend="llm", args=args, result=TEACHER, valid=True, served=True)
    t2 = _rec(backend="llm", args=args, result=_with(reward=1), valid=True, served=True)
    bad_teacher = _rec(backend="llm", args=args, result={"title": 3}, valid=False, served=True)
    rows = [
        t1, t2, bad_teacher,
        _rec(backend="student", model_version="v0001", request_id=t1.call_id, result=TEACHER, valid=True),
        _rec(backend="student", model_version="v0001", request_id=t2.call_id, result=TEACHER, valid=True),
        _rec(backend="student", model_version="v0001", request_id=bad_teacher.call_id, result=TEACHER, valid=True),
        _rec(backend="student", model_version="v0001", request_id=t1.call_id, result=TEACHER, valid=False),
        _rec(backend="student", model_version="v0001", request_id=t1.call_id, valid=None,
             failures=[{"gate": "V0", "code": SKIPPED, "message": "busy", "where": "$"}]),
        _rec(backend="student", model_version="v0002", request_id=t1.call_id, result=TEACHER, valid=True),
    ]
    served = _rec(backend="student", model_version="v0002", args=args, result=_with(band="low"), valid=True, served=True)
    rows += [served, _rec(backend="llm", args=args, request_id=served.call_id, result=TEACHER, valid=True)]
    ev = site_agreement(list(reversed(rows)))
    assert ev.spec.mode == "fields"
    v1 = ev.stats("shadow", "v0001")
    assert (v1.n, v1.agree) == (3, 1)  # the invalid teacher answer is no reference; the skipped call is not judged
    assert ev.skipped == {"v0001": 1}
    assert ev.stats("shadow", "v0002").agree == 1
    spot = ev.stats("spot", "v0002")
    assert (spot.n, spot.agree, spot.weakest_field) == (1, 0, "band")
    assert site_agreement(rows, JudgeSpec("validity-only")).shadow == {}
