"""QuerySampleStore: one file per writer, atomic replacement, stale and unreadable samples left out."""

from __future__ import annotations

import os

import numpy as np

from storage.filesystem import open_location
from storage.query_samples import QuerySample, QuerySampleStore


def rows(n: int, dim: int = 4) -> np.ndarray:
    return np.arange(n * dim, dtype=np.float32).reshape(n, dim)


def test_writers_are_kept_apart_newest_first_and_stale_samples_ignored(tmp_path):
    store = QuerySampleStore(open_location(str(tmp_path)))
    store.write("shop", 1, "a", QuerySample(rows(3), seen=3, written_at=100.0))
    store.write("shop", 1, "b", QuerySample(rows(2), seen=9, written_at=200.0, inputs=rows(2, 7)))
    store.write("shop", 2, "a", QuerySample(rows(4), seen=4, written_at=200.0))
    got = store.read("shop", 1, max_age_seconds=1e9, now=250.0)
    assert [s.seen for s in got] == [9, 3]  # newest first
    assert got[0].inputs.shape == (2, 7) and got[1].inputs is None
    np.testing.assert_array_equal(got[1].vectors, rows(3))
    assert [s.seen for s in store.read("shop", 1, max_age_seconds=100, now=250.0)] == [9]
    assert store.model_versions("shop") == [1, 2] and store.model_versions("other") == []
    store.write("shop", 1, "a", QuerySample(rows(1), seen=30, written_at=300.0))  # a writer replaces its own file
    assert sorted(s.seen for s in store.read("shop", 1, max_age_seconds=1e9, now=300.0)) == [9, 30]


def test_unreadable_samples_are_skipped_and_old_files_pruned(tmp_path):
    store = QuerySampleStore(open_location(str(tmp_path)))
    store.write("shop", 1, "good", QuerySample(rows(2), seen=2, written_at=1_000.0))
    folder = tmp_path / "query-samples" / "shop" / "model-1"
    (folder / "broken.npz").write_bytes(b"not a sample")
    assert [s.seen for s in store.read("shop", 1, max_age_seconds=1e9, now=1_000.0)] == [2]
    old = folder / "good.npz"
    os.utime(old, (1_000.0, 1_000.0))
    assert store.prune("shop", max_age_seconds=3600, now=1_000.0 + 7200) == 1  # good.npz is 2 h old by mtime
    assert not old.exists()
