"""Embedding a gallery fans out over partitions; the same flow runs on threads and on Dask."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from steward.demo import digits_stream, write_batch


def _read_all(parts: list[dict]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for part in parts:
        table = pq.read_table(part["path"])
        for item_id, emb in zip(table["item_id"].to_pylist(), table["embedding"].to_pylist(), strict=True):
            assert item_id not in out, f"{item_id} embedded twice"
            out[item_id] = np.asarray(emb, np.float32)
    return out


@pytest.mark.slow
def test_gallery_embedding_on_threads_and_on_a_local_dask_cluster(flow_home, tmp_path, monkeypatch) -> None:
    from embedding.retrain import retrain
    from flows.context import workspace
    from flows.gallery import embed_gallery

    x, y, stream = digits_stream(4, seed=0)
    ws = workspace()
    for i, batch in enumerate(stream[:3]):
        ws.store.ingest(write_batch(tmp_path / f"{batch.name}.parquet", x, y, batch, seed=i), "digits")
    version = retrain(ws, "digits", full=True, progress=False).model.version
    expected_ids = set(ws.store.read("digits", columns=["label"])["item_id"].to_pylist())

    monkeypatch.setenv("STEWARD_TASK_RUNNER", "threads")
    threads = embed_gallery("digits", version, out_dir=str(tmp_path / "threads"))
    monkeypatch.setenv("STEWARD_TASK_RUNNER", "dask")
    monkeypatch.setenv("STEWARD_DASK_WORKERS", "2")
    dask = embed_gallery("digits", version, out_dir=str(tmp_path / "dask"))

    assert len(threads) == len(dask) == 3  # one partition per batch file
    by_threads, by_dask = _read_all(threads), _read_all(dask)
    assert set(by_threads) == set(by_dask) == expected_ids  # every live item exactly once
    for item_id, vec in by_threads.items():
        np.testing.assert_allclose(by_dask[item_id], vec, atol=1e-5)
        assert abs(np.linalg.norm(vec) - 1) < 1e-4
