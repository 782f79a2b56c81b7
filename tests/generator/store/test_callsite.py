"""Call-site ids: stable, schema-sensitive, parseable."""

from __future__ import annotations

import pytest

from generator.store.callsite import LEVEL_SITE, SPEC_SITE, schema_hash, site_id, site_name, split_site


def test_hash_ignores_key_order_but_not_content():
    a = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}
    b = {"properties": {"y": {"type": "integer"}, "x": {"type": "integer"}}, "type": "object"}
    assert schema_hash(a) == schema_hash(b)
    assert schema_hash(a) != schema_hash({**a, "required": ["x"]})
    assert len(schema_hash(None)) == 8


def test_site_ids_round_trip():
    site = site_id("recipes", "Kitchen.invent", {"type": "string"})
    assert split_site(site)[:2] == ("recipes", "Kitchen.invent")
    assert site_name(site) == "recipes:Kitchen.invent"
    assert split_site(LEVEL_SITE)[:2] == ("jac.levels", "design_level")
    assert split_site(SPEC_SITE)[:2] == ("jac.levels", "choose_next_spec")


@pytest.mark.parametrize("bad", ["no-hash", "module#abc", ":q#abc", "m:q#"])
def test_malformed_ids_are_rejected(bad):
    with pytest.raises(ValueError, match="module:qualname#hash8"):
        split_site(bad)
