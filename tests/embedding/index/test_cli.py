"""`steward index build|update|list` and `steward search`, in-process with a fake embedder."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from steward.cli import main
from tests.embedding.index.fakes import DIM, home_with_fake_embedder
from tests.factories import feature_table


@pytest.fixture
def home(tmp_path, monkeypatch):
    fake = home_with_fake_embedder(tmp_path, monkeypatch, feature_table(300, DIM, n_classes=4, seed=1))
    from core.settings import load_settings
    from storage.workspace import open_workspace

    ws = open_workspace(load_settings())
    ws.registry.models.register_model("c", config={}, metrics={}, artifacts={})
    ws.registry.dispose()
    return tmp_path, fake


def test_build_list_search_update(home, capsys):
    tmp_path, fake = home
    capsys.readouterr()
    assert main(["index", "build", "--collection", "c"]) == 4  # no production model and no --model
    capsys.readouterr()
    assert main(["index", "build", "--collection", "c", "--model", "1", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["num_vectors"] == 300 and built["metrics"]["recall_at_10"] == pytest.approx(1.0)

    assert main(["search", "--collection", "c", "--model", "1", "--item-id", "i0", "--k", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    nbrs = res["results"][0]["item_ids"]
    assert len(nbrs) == 3 and "i0" not in nbrs

    q = fake.embed_features(feature_table(2, DIM, seed=9).column("features").combine_chunks()
                            .flatten().to_numpy().reshape(2, DIM))
    np.save(tmp_path / "q.npy", q)
    assert main(["search", "--collection", "c", "--model", "1", "--vectors", str(tmp_path / "q.npy"), "--k", "2"]) == 0
    assert "query 1:" in capsys.readouterr().out

    pq.write_table(feature_table(20, DIM, seed=2, start=900), tmp_path / "b2.parquet")
    assert main(["ingest", str(tmp_path / "b2.parquet"), "--collection", "c"]) == 0
    capsys.readouterr()
    assert main(["index", "update", "--collection", "c", "--index-version", str(built["id"]), "--json"]) == 0
    upd = json.loads(capsys.readouterr().out)
    assert upd["num_vectors"] == 320 and upd["metrics"]["incremental"]["added"] == 20
    # the update's own figures, measured after it, not the parent's carried over
    assert upd["metrics"]["measured_after"] == "update" and "tried" not in upd["metrics"]
    assert upd["metrics"]["query_source"] == "held_out_items" and upd["metrics"]["latency_p50_ms"] > 0

    assert main(["index", "list", "--collection", "c", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [built["id"], upd["id"]]
    assert main(["index", "list", "--collection", "c"]) == 0
    assert "queries=held_out_items" in capsys.readouterr().out

    assert main(["index", "build", "--collection", "c", "--model", "1", "--factory", "HNSW8,Flat", "--json"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["factory"] == "HNSW8,Flat" and "--factory" in forced["metrics"]["choice_reason"]
    assert forced["params"]["search"]["efSearch"] >= 10
    assert main(["search", "--collection", "c", "--index-version", str(forced["id"]), "--vectors",
                 str(tmp_path / "q.npy"), "--k", "500"]) == 0
    assert "fewer than k=500" in capsys.readouterr().err
    assert main(["search", "--collection", "c", "--model", "1", "--vectors", str(tmp_path / "missing.npy")]) == 4
