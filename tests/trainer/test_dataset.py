"""Dataset curation: only valid outputs, duplicates removed, specs never straddle the split,
fun oversampling, and a JSONL export that `datasets` can load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.core.level import Level, Placed
from generator.local.codec import encode_prompt
from generator.store.callsite import LEVEL_SITE
from generator.store.records import CallRecord
from generator.store import Store
from trainer.config import DatasetConfig
from generator.training.bootstrap import SpecRanges, random_spec
from trainer.dataset import build_dataset, load_exported
from trainer.errors import DatasetError


def _level(rng: np.random.Generator, spec: dict) -> Level:
    w, h = spec["width"], spec["height"]
    grid = np.ones((h, w), dtype=np.uint8)
    grid[1:-1, 1:-1] = 0
    inner = rng.random((h - 2, w - 2)) < 0.15
    inner[:2, :2] = inner[-2:, -2:] = False
    grid[1:-1, 1:-1][inner] = 1
    free = [(x, y) for y in range(1, h - 1) for x in range(1, w - 1) if grid[y, x] == 0 and x + y > 8 and (x, y) != (w - 2, h - 2)]
    picks = rng.permutation(len(free))
    ens = [Placed("rat", *free[i]) for i in picks[: spec["enemies"]]]
    its = [Placed("potion", *free[i]) for i in picks[spec["enemies"]: spec["enemies"] + spec["items"]]]
    return Level(name="t", grid=grid, spawn=(1, 1), exit=(w - 2, h - 2), enemies=ens, items=its, theme=spec["theme"])


def fill_store(store: Store, n: int, *, seed: int = 0, site: str = LEVEL_SITE) -> list[CallRecord]:
    rng = np.random.default_rng(seed)
    ranges = SpecRanges(width=(16, 18), height=(12, 13), enemies=(0, 2), items=(0, 2))
    recs = []
    for _ in range(n):
        spec = random_spec(rng, ranges)
        rec = CallRecord(site=site, backend="procedural", args={"spec": spec}, result=_level(rng, spec).to_dict(), valid=True)
        store.record_call(rec)
        recs.append(rec)
    return recs


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "forge.db") as s:
        yield s


def test_only_valid_unique_levels_and_no_spec_in_both_splits(store):
    recs = fill_store(store, 40)
    # an invalid output, an exact copy and a near-copy (one tile differs) must all go
    store.record_call(CallRecord(site=LEVEL_SITE, backend="llm", args=recs[0].args, result=recs[1].result, valid=False))
    store.record_call(CallRecord(site=LEVEL_SITE, backend="llm", args=recs[2].args, result=recs[2].result, valid=True))
    near = json.loads(json.dumps(recs[3].result))
    row = list(near["rows"][5]); row[8] = "#" if row[8] == "." and (8, 5) not in {(e["x"], e["y"]) for e in near["enemies"] + near["items"]} else row[8]
    near["rows"][5] = "".join(row)
    store.record_call(CallRecord(site=LEVEL_SITE, backend="llm", args={"spec": {**recs[3].args["spec"], "difficulty": 1}}, result=near, valid=True))
    ds = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=10, heldout_fraction=0.2))
    assert ds.stats["not_valid"] == 0  # valid_only=True: invalid rows never leave the store
    assert ds.stats["exact_duplicates"] == 1 and ds.stats["near_duplicates"] >= 1
    assert len(ds.train) + len(ds.eval) == 40
    assert {e.spec_key for e in ds.train}.isdisjoint({e.spec_key for e in ds.eval})
    assert len(ds.eval) == 8 and len(ds.heldout_specs) == 8
    ex = ds.train[0]
    assert ex.text.startswith(ex.prompt) and ex.prompt.startswith("L ") and ex.completion.count("\n") == ex.result["height"]


def test_same_spec_stays_on_one_side(store):
    fill_store(store, 20)
    recs = fill_store(store, 6, seed=5)
    for r in recs:  # several different levels for one spec
        store.record_call(CallRecord(site=LEVEL_SITE, backend="procedural", args=recs[0].args,
                                     result=_level(np.random.default_rng(len(r.call_id) + hash(r.call_id) % 1000), recs[0].args["spec"]).to_dict(), valid=True))
    ds = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=5, heldout_fraction=0.3, seed=3))
    key = json.dumps(recs[0].args["spec"], sort_keys=True, separators=(",", ":"))
    sides = {("train" if e in ds.train else "eval") for e in ds.train + ds.eval if e.spec_key == key}
    assert len(sides) == 1


def test_a_seed_in_the_arguments_does_not_make_a_new_spec(store):
    recs = fill_store(store, 20)
    rng = np.random.default_rng(9)
    for seed in range(5):  # the facade records the seed next to the spec
        store.record_call(CallRecord(site=LEVEL_SITE, backend="procedural", args={"seed": seed, **recs[0].args},
                                     result=_level(rng, recs[0].args["spec"]).to_dict(), valid=True))
    for split_seed in range(4):
        ds = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=5, heldout_fraction=0.3, seed=split_seed))
        assert {e.spec_key for e in ds.train}.isdisjoint({e.spec_key for e in ds.eval})
        assert len(ds.heldout_specs) == len({e.spec_key for e in ds.eval})


def test_fun_scores_oversample_enjoyed_levels(store):
    recs = fill_store(store, 30)
    for r in recs[:10]:
        store.record_fun(r.call_id, 1.0 if r is recs[0] else 0.01, {})
    ds = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=10, fun_oversample=1.0, heldout_fraction=0.1, seed=1))
    by_id = {e.call_id: e for e in ds.train}
    assert recs[0].call_id in by_id or recs[0].call_id in {e.call_id for e in ds.eval}
    if recs[0].call_id in by_id:
        liked = by_id[recs[0].call_id].repeat
        others = [by_id[r.call_id].repeat for r in recs[1:10] if r.call_id in by_id]
        assert liked > max(others)
    assert sum(e.repeat for e in ds.train) == len(ds.train) + ds.stats["fun_extra_draws"]
    assert len(ds.train_texts()) == sum(e.repeat for e in ds.train)
    no_fun = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=10, fun_weighting=False))
    assert all(e.repeat == 1 for e in no_fun.train)


def test_too_little_data_says_how_to_get_more(store):
    fill_store(store, 3)
    with pytest.raises(DatasetError, match="--bootstrap"):
        build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=10))


def test_export_is_loadable_jsonl_and_round_trips(store, tmp_path):
    fill_store(store, 25)
    ds = build_dataset(store, LEVEL_SITE, DatasetConfig(min_examples=5))
    paths = ds.export(tmp_path / "export")
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert len(rows) == len(ds.train)
    # one flat schema for every row, as arrow (HF datasets) needs
    assert {tuple(sorted(r)) for r in rows} == {tuple(sorted(rows[0]))}
    assert {"text", "prompt", "completion"} <= set(rows[0])
    again = load_exported(tmp_path / "export")
    assert again.hash == ds.hash and again.train_texts(seed=2) == ds.train_texts(seed=2)
    try:
        import datasets  # optional
    except ImportError:
        return
    loaded = datasets.load_dataset("json", data_files={"train": str(paths["train"]), "validation": str(paths["eval"])})
    assert loaded["train"].num_rows == len(ds.train)


def test_generic_sites_use_compact_json(store):
    site = "demo.mod:choose_name#12345678"
    for i in range(12):
        store.record_call(CallRecord(site=site, backend="llm", args={"seed": i}, result={"name": f"n{i}"}, valid=True))
    ds = build_dataset(store, site, DatasetConfig(min_examples=5))
    assert all(e.text == f'{{"seed":{e.args["seed"]}}}\t{{"name":"n{e.args["seed"]}"}}\n' for e in ds.train)


def test_output_schema_travels_with_the_dataset(store, tmp_path):
    site = "demo.mod:choose_name#12345678"
    schema = {"type": "object", "required": ["name"]}
    for i in range(12):
        store.record_call(CallRecord(site=site, backend="llm", args={"seed": i}, result={"name": f"n{i}"},
                                     valid=True, output_schema=schema))
    ds = build_dataset(store, site, DatasetConfig(min_examples=5))
    assert ds.output_schema == schema
    ds.export(tmp_path / "e")
    assert load_exported(tmp_path / "e").output_schema == schema


def test_held_out_arguments_read_back_from_the_export_give_the_prompt_the_student_was_trained_on(store, tmp_path):
    # The trainer judges a student on the exported held-out split; its arguments come back from JSON with
    # sorted keys, while the program recorded them in declaration order.
    site = "bounty_board:post_bounty#0f113f41"
    for i in range(12):
        store.record_call(CallRecord(site=site, backend="llm", valid=True,
                                     args={"monster": {"name": f"m{i}", "level": i, "heads": 1}, "town": "Ashford"},
                                     result={"title": f"Slay the m{i} of Ashford", "reward": 40 * i + 25}))
    ds = build_dataset(store, site, DatasetConfig(min_examples=5))
    ds.export(tmp_path / "e")
    again = load_exported(tmp_path / "e")
    for example in [*again.train, *again.eval]:
        assert encode_prompt(site, example.args) == example.prompt
        assert example.text.startswith(example.prompt)


def test_bootstrap_specs_ask_big_maps_for_the_contracts_counts_and_small_maps_for_what_fits():
    # A student trained on the wide preset's bootstrap must see the counts the game asks of a big map
    # (the contract allows 30 enemies, 20 items), and a small map must not be asked for more than it holds.
    from generator.training.bootstrap import count_caps

    rng = np.random.default_rng(0)
    ranges = SpecRanges(width=(16, 64), height=(12, 48), enemies=(0, 30), items=(0, 20))
    specs = [random_spec(rng, ranges) for _ in range(3000)]
    for s in specs:
        enemy_cap, item_cap = count_caps(s["width"], s["height"])
        assert s["enemies"] <= enemy_cap and s["items"] <= item_cap, s
    big = [s for s in specs if s["width"] * s["height"] >= 1500]
    assert max(s["enemies"] for s in big) == 30 and max(s["items"] for s in big) == 20
    assert count_caps(16, 12) == (6, 4) and count_caps(64, 48) == (61, 38)


def test_a_level_students_envelope_counts_only_the_levels_it_learned_whole():
    # The loop cuts texts longer than max_len: a student trained on cut 40x24 levels never wrote one whole,
    # so its version must not claim that size (routing would let it serve there).
    from types import SimpleNamespace

    from trainer.pipeline import spec_ranges

    def ex(w, h, enemies):
        spec = {"width": w, "height": h, "difficulty": 3, "enemies": enemies, "items": 1, "theme": "crypt"}
        return SimpleNamespace(args={"spec": spec}, text="x" * (22 + h * (w + 8)))

    ds = SimpleNamespace(train=[ex(16, 12, 2), ex(24, 16, 6), ex(40, 24, 12)])
    assert spec_ranges(LEVEL_SITE, ds, 640) == {"width": [16, 24], "height": [12, 16], "enemies": [2, 6],
                                               "items": [1, 1], "area": [192, 384]}
    assert spec_ranges(LEVEL_SITE, ds, 2000)["width"] == [16, 40]
    assert spec_ranges(LEVEL_SITE, ds, 100) == {"area": [0, 0]}  # nothing learned whole: it serves nothing
    assert spec_ranges("shop.jac:price#0", ds, 640) is None


def test_balanced_bootstrap_specs_give_each_size_band_a_third():
    # Drawn uniformly over 16-64 x 12-48 only ~2 % of specs are small; the held-out set and the game's
    # first levels are small, so a whole-range preset asks for the bands evenly.
    from generator.evaluate.metrics import size_band

    rng = np.random.default_rng(0)
    plain = SpecRanges(width=(16, 64), height=(12, 48))
    share = sum(size_band(random_spec(rng, plain)) == "small" for _ in range(600)) / 600
    balanced = SpecRanges(width=(16, 64), height=(12, 48), balance_bands=True)
    bands = [size_band(random_spec(rng, balanced)) for _ in range(600)]
    assert share < 0.06 and all(0.28 < bands.count(b) / 600 < 0.39 for b in ("small", "medium", "large"))
