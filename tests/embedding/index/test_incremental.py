"""Incremental changes: fresh metrics on held-out changed items, compaction, re-tuning, no dead ids."""

from __future__ import annotations

import numpy as np

from benchmarks.datasets.clustered import clustered_vectors
from embedding.index.ann import AnnIndex
from embedding.index.choice import IndexChoice
from embedding.index.incremental import IncrementalPolicy, apply_changes

HNSW = IndexChoice("HNSW16,Flat", "inner_product", "hnsw", {"M": 16, "efConstruction": 40})
IVF = IndexChoice("IVF64,Flat", "inner_product", "ivf_flat", {"nlist": 64})


def _more(n, seed=7):
    return clustered_vectors(n, 32, n_clusters=40, spread=0.8, seed=seed)[-n:]


def test_update_is_measured_on_held_out_items_and_keeps_them(gallery):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 128}
    ann.meta["fresh_latency_p50_ms"] = 1e9  # no latency-triggered compaction here
    more = clustered_vectors(4800, x.shape[1], n_clusters=40, spread=0.8, seed=7)[4200:]  # same mixture
    new_ids = [f"n{i}" for i in range(len(more))]
    out = apply_changes(ann, new_ids, more, ids[:50], IncrementalPolicy(sample_queries=100, latency_queries=5))
    assert (out.added, out.updated, out.removed) == (600, 0, 50)
    assert out.remeasured and out.query_source == "held_out_items" and out.recall_at_10 >= 0.95
    assert out.latency_p50_ms > 0 and not out.rebuild_proposed
    assert all(i in ann for i in new_ids)  # held-out items were added after measuring
    assert ann.ntotal == len(ids) + 600 - 50


def test_tombstones_past_the_fraction_are_compacted_and_never_returned(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)  # HNSW cannot delete: removals are tombstones
    ann.search_params = {"efSearch": 64}
    gone = ids[: len(ids) // 4]
    out = apply_changes(ann, remove_ids=gone, policy=IncrementalPolicy(max_tombstone_fraction=0.2))
    assert out.removed == len(gone) and out.compacted and ann.tombstone_count == 0
    assert ann.ntotal == len(ids) - len(gone) and ann.faiss_index.ntotal == ann.ntotal
    found = {i for row in ann.search(q, 10).item_ids for i in row}
    assert not found & set(gone)
    assert ann.search_ids([ids[-1]], 3).item_ids[0][0] != ids[-1]


def test_few_tombstones_stay_filtered_by_the_bitmap(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 64}
    # remove the exact top-1 of every query: each would be returned if the filter failed
    top1 = np.argmax(q @ x.T, axis=1)
    gone = sorted({ids[j] for j in top1})
    assert ann.remove(gone) == len(gone) and ann.tombstone_count == len(gone)
    res = ann.search(q, 10)
    assert not {i for row in res.item_ids for i in row} & set(gone)
    assert all(len(row) == 10 for row in res.item_ids)


def test_ivf_deletes_in_place(gallery):
    ids, x, _q = gallery
    ann = AnnIndex.build(ids, x, IVF, threads=1)
    ann.search_params = {"nprobe": 64}
    assert ann.remove(ids[:100]) == 100
    assert ann.tombstone_count == 0 and ann.faiss_index.ntotal == len(ids) - 100
    assert not {i for row in ann.search(x[:100], 5).item_ids for i in row} & set(ids[:100])


def test_recall_below_target_retunes_upward(gallery):
    ids, x, _ = gallery
    ann = AnnIndex.build(ids, x, IVF, threads=1)
    ann.search_params = {"nprobe": 1}  # tuned for a different, easier collection
    ann.meta["fresh_latency_p50_ms"] = 1e9
    more = clustered_vectors(4800, x.shape[1], n_clusters=40, spread=0.8, seed=7)[4200:]
    out = apply_changes(ann, [f"s{i}" for i in range(len(more))], more, (),
                        IncrementalPolicy(target_recall=0.95, sample_queries=200, latency_queries=5))
    assert out.retuned and ann.search_params["nprobe"] > 1
    assert out.recall_at_10 >= 0.95 and not out.rebuild_proposed


def test_recent_queries_are_a_second_query_source(gallery):
    ids, x, q = gallery
    ann = AnnIndex.build(ids, x, HNSW, threads=1)
    ann.search_params = {"efSearch": 64}
    ann.meta["fresh_latency_p50_ms"] = 1e9
    more = clustered_vectors(4800, x.shape[1], n_clusters=40, spread=0.8, seed=7)[4300:]
    out = apply_changes(ann, [f"n{i}" for i in range(len(more))], more, (),
                        IncrementalPolicy(sample_queries=50, latency_queries=5), recent_queries=q[:50])
    assert out.query_source == "held_out_items+recent_queries"
