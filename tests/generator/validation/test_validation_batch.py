"""The fast routes give the same reports as the full one: batch vs single, OpenCV vs scipy labelling."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.validate import make_levels
from engine.core.level import Level, LevelSpec, Placed
from generator.validation import components, validate_batch, validate_level
from tests.fakes.hand_levels import BREAKS, SPEC, good

BACKENDS = components.available()


@pytest.fixture(params=BACKENDS)
def backend(request):
    old = components.backend()
    components.use_backend(request.param)
    yield request.param
    components.use_backend(old)


def _full(report):
    return report.valid, [(f.gate, f.code, f.message, f.where, f.at) for f in report.failures]


def _masks(seed: int):
    rng = np.random.default_rng(seed)
    shapes = [(1, 1), (1, 9), (9, 1), (12, 20), (32, 48), (5, 64)]
    for h, w in shapes:
        for p in (0.0, 0.3, 0.55, 0.8, 1.0):
            yield (rng.random((h, w)) < p).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1])
def test_labellers_number_regions_like_ndimage(backend, seed):
    cross = ndimage.generate_binary_structure(2, 1)
    for mask in _masks(seed):
        labels, n = components.label4(mask)
        want, want_n = ndimage.label(mask, structure=cross)
        assert n == want_n
        np.testing.assert_array_equal(labels, want)


def test_stacked_labels_never_join_levels(backend):
    rng = np.random.default_rng(7)
    stack = rng.random((30, 9, 13)) < 0.6
    stack[3] = True  # an all-floor level touching the ones above and below it
    stack[4] = False  # and an all-wall one
    labels, regions = components.label_stack(stack)
    for k in range(len(stack)):
        _, n = ndimage.label(stack[k])
        assert regions[k] == n
        own = np.unique(labels[k][labels[k] > 0])
        assert len(own) == n  # every region's number belongs to this level alone
        if k:
            assert not np.intersect1d(own, np.unique(labels[:k])).size


def _every_gate_set() -> tuple[list, list]:
    """Seeded benchmark levels (most broken) plus one of each hand-made break, in every input form."""
    items: list = []
    specs: list = []
    levels, lspecs = make_levels(160, 24, 16, seed=11, broken_share=0.7)
    for k, (lv, sp) in enumerate(zip(levels, lspecs)):
        items.append(lv if k % 3 else lv.to_json())
        specs.append(sp if k % 4 else None)
    for name, (fn, _) in sorted(BREAKS.items()):
        doc = good()
        fn(doc)
        for form in (doc, json.dumps(doc)):
            items.append(copy.deepcopy(form) if isinstance(form, dict) else form)
            specs.append(SPEC)
        try:
            items.append(Level.from_json(json.dumps(doc)))
            specs.append(SPEC if len(items) % 2 else None)
        except Exception:  # noqa: BLE001 - breaks a Level cannot even hold
            pass
    base = Level.from_json(json.dumps(good()))
    odd = [
        Level(name="far", grid=base.grid, spawn=(1, 1), exit=(99, 3), enemies=base.enemies, items=base.items,
              theme="crypt"),
        Level(name="neg", grid=base.grid, spawn=(-1, 1), exit=base.exit, enemies=base.enemies, items=base.items,
              theme="crypt"),
        Level(name="odd", grid=base.grid, spawn=base.spawn, exit=base.exit,
              enemies=[Placed("rat", 10, 5), Placed("rat", 10, 5), Placed("bat", 2, 1)], items=[], theme="crypt"),
        Level(name="moon", grid=base.grid, spawn=base.spawn, exit=base.exit, enemies=[], items=[], theme="moon"),
        Level(name="glyph", grid=np.where(base.grid == 0, 0, 7).astype(np.uint8), spawn=base.spawn, exit=base.exit,
              enemies=[], items=[], theme="crypt"),
        Level(name="tiny", grid=np.ones((1, 1), np.uint8), spawn=(0, 0), exit=(0, 0), theme="crypt"),
        Level(name="solid", grid=np.ones((6, 6), np.uint8), spawn=(2, 2), exit=(3, 3), theme="crypt"),
    ]
    for lv in odd:
        items.extend([lv, lv])
        specs.extend([SPEC, None])
    items += [b"{", "", "[]", '{"rows": 5}', json.dumps({**good(), "rows": None})]
    specs += [None] * 5
    return items, specs


def test_batch_reports_equal_single_reports_on_every_gate(backend):
    items, specs = _every_gate_set()
    rng = random.Random(3)
    order = list(range(len(items)))
    rng.shuffle(order)  # shapes and forms interleaved, so grouping must put every report back in place
    items = [items[k] for k in order]
    specs = [specs[k] for k in order]
    singles = [validate_level(x, sp) for x, sp in zip(items, specs)]
    batch = validate_batch(items, specs)
    assert [_full(r) for r in batch] == [_full(r) for r in singles]
    assert [r.level for r in batch] == [r.level for r in singles]
    gates = {f.gate for r in singles for f in r.failures}
    assert gates == {f"V{i}" for i in range(8)}
    codes = {f.code for r in singles for f in r.failures}
    assert len(codes) >= 24
    assert 0 < sum(r.valid for r in singles) < len(singles)


def test_level_fast_route_agrees_with_full_route(backend):
    """A Level and its JSON text take different routes; the reports must not differ."""
    levels, specs = make_levels(120, 32, 24, seed=5, broken_share=0.5)
    for lv, sp in zip(levels, specs):
        assert _full(validate_level(lv, sp)) == _full(validate_level(lv.to_json(), sp))
        assert _full(validate_level(lv)) == _full(validate_level(lv.to_dict()))


def test_one_spec_for_all_and_chunks(backend, monkeypatch):
    import generator.validation as validation

    monkeypatch.setattr(validation, "BATCH_CHUNK", 7)
    levels, _ = make_levels(40, 20, 14, seed=2)
    spec = LevelSpec(width=20, height=14, difficulty=3, enemies=6, items=3, theme="crypt")
    assert [_full(r) for r in validate_batch(levels, spec)] == [_full(validate_level(lv, spec)) for lv in levels]


def test_failure_text_written_on_first_use_matches_single(backend):
    """Failing batch verdicts are known at once; their failures (and level) appear on first use, same as single."""
    items, specs = _every_gate_set()
    singles = [validate_level(x, sp) for x, sp in zip(items, specs)]
    batch = validate_batch(items, specs)
    assert [r.valid for r in batch] == [r.valid for r in singles]
    # the level first this time (it completes the report too), then the failures
    assert [r.level for r in batch] == [r.level for r in singles]
    assert [_full(r) for r in batch] == [_full(r) for r in singles]
    again = validate_batch(items, specs)
    assert [r.feedback() for r in reversed(again)] == [r.feedback() for r in reversed(singles)]
    assert [r.to_dict() for r in again] == [r.to_dict() for r in singles]


def test_scratch_buffers_do_not_leak_between_stacks(backend):
    """Reused stack buffers: a big stack then a smaller one of another shape, then the first shape again."""
    big, big_specs = make_levels(60, 30, 20, seed=4)
    small, small_specs = make_levels(9, 20, 14, seed=5)
    for levels, sps in ((big, big_specs), (small, small_specs), (big[:17], big_specs[:17]), (big, big_specs)):
        assert [_full(r) for r in validate_batch(levels, sps)] == [_full(validate_level(lv, sp))
                                                                   for lv, sp in zip(levels, sps)]


def test_region_counts_and_walkable_counts(backend):
    from generator.validation.bulk import _walkable_counts

    rng = np.random.default_rng(9)
    for n, h, w in ((5, 9, 13), (40, 32, 48), (3, 70, 40), (1, 1, 8)):
        stack = rng.random((n, h, w)) < 0.6
        board = components.mosaic(n, h, w)
        board[:, :h] = stack
        _, want = components.label_mosaic(board)
        out = np.zeros(board.shape, dtype=np.int32)
        np.testing.assert_array_equal(components.region_counts(board, out), want)
        np.testing.assert_array_equal(_walkable_counts(board.reshape(n, -1)), stack.reshape(n, -1).sum(axis=1))
        board[:] = 1  # all ones: the word sums must not carry between byte lanes
        np.testing.assert_array_equal(_walkable_counts(board.reshape(n, -1)), np.full(n, (h + 1) * w))


def test_levels_and_texts_of_one_size_keep_their_places(backend):
    """Level objects and JSON texts of one size share stacks; every verdict must land on its own item."""
    levels, specs = make_levels(24, 20, 14, seed=8, broken_share=0.5)
    items = [lv if k % 2 else lv.to_json() for k, lv in enumerate(levels)]
    items = items[1::2] + items[0::2]  # Level objects first, then texts, then check them interleaved too
    specs = specs[1::2] + specs[0::2]
    for its, sps in ((items, specs), (items[::-1], specs[::-1])):
        assert [_full(r) for r in validate_batch(its, sps)] == [_full(validate_level(x, sp)) for x, sp in zip(its, sps)]
    mixed = [x for pair in zip(items[:12], items[12:]) for x in pair]
    mixed_specs = [x for pair in zip(specs[:12], specs[12:]) for x in pair]
    assert [_full(r) for r in validate_batch(mixed, mixed_specs)] == [
        _full(validate_level(x, sp)) for x, sp in zip(mixed, mixed_specs)]


def test_big_maps_go_in_smaller_stacks(backend, monkeypatch):
    import generator.validation.bulk as bulk

    monkeypatch.setattr(bulk, "STACK_TILES", 5 * 40 * 30)  # five 40x30 levels per stack
    levels, specs = make_levels(23, 40, 30, seed=6)
    assert [_full(r) for r in validate_batch(levels, specs)] == [_full(validate_level(lv, sp))
                                                                for lv, sp in zip(levels, specs)]


def test_16_bit_labels_fall_back_when_regions_overflow(backend):
    board = np.zeros((40, 64, 120), dtype=np.uint8)
    board[:, ::2, ::2] = 1  # 1,920 single-tile regions per level: 76,800 in all, past 16 bits
    out16 = np.zeros(board.shape, dtype=np.uint16)
    counts = components.region_counts(board, out16)
    np.testing.assert_array_equal(counts, np.full(40, 32 * 60))
    small = board[:3]
    np.testing.assert_array_equal(components.region_counts(small, out16[:3]), np.full(3, 32 * 60))


def test_batches_on_two_threads_at_once(backend):
    """Stack buffers are per thread: two batches at once must not see each other's levels."""
    from concurrent.futures import ThreadPoolExecutor

    a, a_specs = make_levels(60, 24, 16, seed=12, broken_share=0.5)
    b, b_specs = make_levels(60, 24, 16, seed=13, broken_share=0.5)
    want_a = [_full(validate_level(lv, sp)) for lv, sp in zip(a, a_specs)]
    want_b = [_full(validate_level(lv, sp)) for lv, sp in zip(b, b_specs)]
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(validate_batch, *(a, a_specs) if k % 2 else (b, b_specs)) for k in range(8)]
        got = [[_full(r) for r in run.result()] for run in runs]
    assert all(g == (want_a if k % 2 else want_b) for k, g in enumerate(got))
