"""Incremental changes: re-measure after enough growth, propose a rebuild when recall or space suffer."""

from __future__ import annotations

import numpy as np

from embedding.index.ann import AnnIndex
from embedding.index.choice import IndexChoice
from embedding.index.incremental import IncrementalPolicy, apply_changes
from embedding.index.synthetic import clustered_vectors

HNSW = IndexChoice("HNSW16,Flat", "inner_product", "hnsw", {"M": 16, "efConstruction": 40})


def test_small_change_is_not_remeasured(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 64}
    out = apply_changes(ann, ["a", "b"], q[:2], ["item-0"], IncrementalPolicy(remeasure_growth_fraction=0.1))
    assert (out.added, out.updated, out.removed, out.remeasured) == (2, 0, 1, False)
    assert not out.rebuild_proposed
    assert out.ntotal == len(ids) + 1


def test_growth_past_fraction_remeasures_and_meets_target(gallery):
    ids, x, _q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 128}
    more = clustered_vectors(800, x.shape[1], n_clusters=40, spread=0.8, seed=7)  # same mixture
    out = apply_changes(ann, [f"n{i}" for i in range(800)], more, (),
                        IncrementalPolicy(remeasure_growth_fraction=0.1, sample_queries=200))
    assert out.remeasured and out.recall_at_10 >= 0.95
    assert not out.rebuild_proposed
    assert ann.meta["changed_since_measure"] == 0 and ann.meta["measured_ntotal"] == ann.ntotal


def test_rebuild_proposed_when_recall_drops_below_target(gallery):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids, x, IndexChoice("IVF64,Flat", "inner_product", "ivf_flat", {"nlist": 64}), threads=1)
    ann.search_params = {"nprobe": 1}  # tuned for a different, easier collection
    rng = np.random.default_rng(3)
    # new items from other regions of the sphere: the old centroids route them badly
    shifted = rng.standard_normal((1000, x.shape[1])).astype(np.float32)
    out = apply_changes(ann, [f"s{i}" for i in range(1000)], shifted, (),
                        IncrementalPolicy(target_recall=0.95, sample_queries=200))
    assert out.remeasured and out.recall_at_10 < 0.95
    assert out.rebuild_proposed and "below" in out.reason


def test_rebuild_proposed_when_tombstones_pile_up(gallery):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)  # HNSW cannot delete: removals are tombstones
    out = apply_changes(ann, remove_ids=ids[: len(ids) // 3],
                        policy=IncrementalPolicy(remeasure_growth_fraction=10.0, max_tombstone_fraction=0.2))
    assert out.removed == len(ids) // 3 and ann.tombstone_count == out.removed
    assert out.rebuild_proposed and "removed vectors" in out.reason
