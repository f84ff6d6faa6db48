"""AnnIndex: id mapping, search, incremental consistency with exact search, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ArtifactIntegrityError, ConflictError, NotFoundError, ValidationError
from embedding.index.ann import AnnIndex
from embedding.index.choice import IndexChoice, choose_index
from tests.embedding.index.conftest import exact_top

FLAT = IndexChoice("Flat", "inner_product", "flat")
HNSW = IndexChoice("HNSW16,Flat", "inner_product", "hnsw", {"M": 16, "efConstruction": 40})
IVF = IndexChoice("IVF32,Flat", "inner_product", "ivf_flat", {"nlist": 32})
# Search parameters high enough that the approximate indexes answer exactly on this small set.
EXACT_ENOUGH = {"flat": {}, "hnsw": {"efSearch": 400}, "ivf_flat": {"nprobe": 32}}


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)]))


@pytest.fixture(params=[FLAT, HNSW, IVF], ids=lambda c: c.family)
def index(request, gallery):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids, x, request.param, threads=1)
    ann.search_params = dict(EXACT_ENOUGH[request.param.family])
    return ann


def test_search_returns_item_ids_matching_exact_search(index, gallery):
    ids, x, q = gallery
    res = index.search(q, 10)
    assert res.scores.shape == (len(q), 10)
    assert np.all(np.diff(res.scores, axis=1) <= 1e-6)  # best first
    assert overlap(res.item_ids, exact_top(x, ids, q, 10)) >= 0.99


def test_search_ids_leaves_the_query_item_out(index, gallery):
    ids, x, _ = gallery
    res = index.search_ids(["item-3", "item-99"], 5)
    assert "item-3" not in res.item_ids[0] and "item-99" not in res.item_ids[1]
    truth = exact_top(x, ids, x[[3, 99]], 6)
    assert overlap(res.item_ids, [t[1:] for t in truth]) >= 0.95
    np.testing.assert_allclose(index.vector_of("item-3"), x[3], atol=1e-5)


def test_incremental_add_update_remove_match_exact_search_on_the_same_items(index, gallery):
    ids, x, q = gallery
    rng = np.random.default_rng(1)
    live = dict(zip(ids, x, strict=True))
    # update 200 items with new vectors, remove 300, add 400 new ones
    upd = [ids[i] for i in rng.choice(len(ids), 200, replace=False)]
    new_vecs = rng.standard_normal((200, x.shape[1])).astype(np.float32)
    new_vecs /= np.linalg.norm(new_vecs, axis=1, keepdims=True)
    added, updated = index.add(upd, new_vecs)
    assert (added, updated) == (0, 200)
    live.update(zip(upd, new_vecs, strict=True))
    gone = [i for i in ids if i not in set(upd)][:300]
    assert index.remove(gone + ["never-existed"]) == 300
    for g in gone:
        del live[g]
    extra_ids = [f"new-{i}" for i in range(400)]
    extra = q[rng.integers(0, len(q), 400)] + 0.05 * rng.standard_normal((400, x.shape[1])).astype(np.float32)
    assert index.add(extra_ids, extra) == (400, 0)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    live.update(zip(extra_ids, extra, strict=True))

    assert index.ntotal == len(live)
    live_ids = list(live)
    live_x = np.stack([live[i] for i in live_ids])
    res = index.search(q, 10)
    assert not set(gone) & {i for row in res.item_ids for i in row}
    assert overlap(res.item_ids, exact_top(live_x, live_ids, q, 10)) >= 0.98
    # an updated item is found through its new vector, not the old one
    probe = index.search(new_vecs[:5], 1)
    assert [r[0] for r in probe.item_ids] == upd[:5]
    with pytest.raises(NotFoundError):
        index.vector_of(gone[0])


def test_filter_keeps_only_passing_items_even_when_selective(index, gallery):
    ids, x, q = gallery
    wanted = {f"item-{i}" for i in range(0, len(ids), 97)}  # ~1% of items
    res = index.search(q[:5], 10, filter=lambda iid: iid in wanted)
    for row in res.item_ids:
        assert len(row) == 10 and set(row) <= wanted
    wanted_ids = sorted(wanted)
    wanted_x = x[[ids.index(i) for i in wanted_ids]]
    assert overlap(res.item_ids, exact_top(wanted_x, wanted_ids, q[:5], 10)) >= 0.9


def test_save_load_roundtrip_keeps_answers_and_ids(index, gallery, tmp_path):
    _, _, q = gallery
    index.remove(["item-1", "item-2"])
    before = index.search(q, 10)
    path = index.save(tmp_path / "idx.bin")
    for mmap in (False, True):
        loaded = AnnIndex.load(path, mmap=mmap)
        assert loaded.ntotal == index.ntotal and loaded.factory == index.factory
        assert loaded.search_params == index.search_params
        assert loaded.search(q, 10).item_ids == before.item_ids
    assert AnnIndex.from_bytes(index.to_bytes()).search(q, 10).item_ids == before.item_ids


def test_memory_mapped_index_refuses_changes(gallery, tmp_path):
    ids, x, _ = gallery
    path = AnnIndex.build(ids[:100], x[:100], FLAT).save(tmp_path / "i.bin")
    with pytest.raises(ConflictError, match="mmap=False"):
        AnnIndex.load(path, mmap=True).add(["z"], x[:1])


@pytest.mark.parametrize("where", ["index", "ids", "footer"])
def test_corrupted_index_file_is_refused(gallery, tmp_path, where):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids[:500], x[:500], FLAT)
    path = ann.save(tmp_path / "i.bin")
    data = bytearray(path.read_bytes())
    pos = {"index": 200, "ids": len(data) - 100, "footer": len(data) - 3}[where]
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError):
        AnnIndex.load(path)
    with pytest.raises(ArtifactIntegrityError):
        AnnIndex.from_bytes(bytes(data))


def test_truncated_file_is_refused(gallery, tmp_path):
    ids, x, _ = gallery
    path = AnnIndex.build(ids[:50], x[:50], FLAT).save(tmp_path / "i.bin")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ArtifactIntegrityError):
        AnnIndex.load(path)


def test_bad_inputs_are_validation_errors(gallery):
    ids, x, _ = gallery
    with pytest.raises(ValidationError, match="unique"):
        AnnIndex.build(["a", "a"], x[:2], FLAT)
    with pytest.raises(ValidationError, match="pair up"):
        AnnIndex.build(["a"], x[:2], FLAT)
    ann = AnnIndex.build(ids[:10], x[:10], FLAT)
    with pytest.raises(ValidationError, match="dimension"):
        ann.search(np.zeros((1, 3), np.float32), 2)
    with pytest.raises(NotFoundError):
        ann.search_ids(["nope"], 2)


def test_k_larger_than_index_pads_with_minus_inf(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids[:3], x[:3], choose_index(3, x.shape[1]))
    res = ann.search(q[:1], 5)
    assert len(res.item_ids[0]) == 3
    assert np.isneginf(res.scores[0, 3:]).all()
    assert res.short == (0,)  # the short answer is reported, not passed off as complete


def test_k_beyond_ef_search_still_returns_k(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 16}
    res = ann.search(q[:3], 200)
    assert [len(r) for r in res.item_ids] == [200] * 3 and res.short == ()
    assert len(set(res.item_ids[0])) == 200
    ann.remove(ids[: len(ids) // 2])  # tombstones: the selector must not make the answer short either
    res = ann.search(q[:3], 500)
    assert [len(r) for r in res.item_ids] == [500] * 3
    assert not set(ids[: len(ids) // 2]) & set(res.item_ids[0])


def test_search_one_matches_the_batch_path(index, gallery):
    _, _, q = gallery
    one_ids, one_scores = index.search_one(q[0], 10)
    batch = index.search(q[:1], 10)
    assert one_ids == batch.item_ids[0]
    np.testing.assert_allclose(one_scores, batch.scores[0], rtol=1e-6)


def test_zero_vectors_are_refused_with_their_ids(gallery):
    ids, x, _ = gallery
    bad = x[:5].copy()
    bad[3] = 0.0
    with pytest.raises(ValidationError, match=r"zero norm.*item-3"):
        AnnIndex.build(ids[:5], bad, FLAT)
    ann = AnnIndex.build(ids[:5], x[:5], FLAT)
    with pytest.raises(ValidationError, match="zero norm"):
        ann.add(["z"], np.zeros((1, x.shape[1]), np.float32))
    assert ann.ntotal == 5


def test_lookups_are_arrays_not_dicts(index, gallery):
    ids, _, _ = gallery
    assert index.labels_of(ids[:3]).dtype == np.int64
    assert not any(isinstance(v, dict) and len(v) >= len(ids) for v in vars(index).values())


CHEAP = {"flat": {}, "hnsw": {"efSearch": 16}, "ivf_flat": {"nprobe": 2}}


def test_search_without_tombstones_is_the_raw_faiss_call_at_the_tuned_values(index, gallery):
    """The tuned values live on the faiss index, so a plain faiss search gives the same answer (ids by
    label) at every setting, including ones cheap enough to miss neighbours."""
    _, _, q = gallery
    for params in (CHEAP[index.family], EXACT_ENOUGH[index.family]):
        index.search_params = dict(params)
        raw_scores, raw_labels = index.faiss_index.search(np.ascontiguousarray(q[:50]), 10)
        res = index.search(q[:50], 10)
        assert res.item_ids == [[index.item_of(lab) for lab in row] for row in raw_labels.tolist()]
        np.testing.assert_allclose(res.scores, raw_scores, rtol=1e-6)


def test_query_scale_does_not_change_the_answer(index, gallery):
    _, _, q = gallery
    unit = index.search(q[:20], 10)
    scaled = index.search(q[:20] * np.linspace(0.1, 7.0, 20, dtype=np.float32)[:, None], 10)
    assert scaled.item_ids == unit.item_ids
    np.testing.assert_allclose(scaled.scores, unit.scores, rtol=1e-5, atol=1e-6)  # cosine either way
    ids, scores = index.search_one(3.0 * q[0], 10)
    assert ids == unit.item_ids[0]
    np.testing.assert_allclose(scores, unit.scores[0], rtol=1e-5, atol=1e-6)
    bad = q[:2].copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        index.search(bad, 5)
    with pytest.raises(ValidationError, match="NaN"):
        index.search(bad[1:], 5)
