"""`steward embed --input FILE`: rows in no collection, validated like ingest, streamed, written atomically."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embedding.inference
from core.errors import ValidationError
from steward.cli import main
from tests.embedding.index.fakes import DIM, home_with_fake_embedder
from tests.factories import feature_table


@pytest.fixture
def home(tmp_path, monkeypatch):
    fake = home_with_fake_embedder(tmp_path, monkeypatch, feature_table(50, DIM, seed=1))
    return tmp_path, fake


def _csv_with_bad_rows(path, n=30):
    """A CSV as clients write them (feature_0..feature_N); row 3 has a NaN, row 7 repeats an id."""
    t = feature_table(n, DIM, seed=2, start=5000)
    x = np.array(t.column("features").to_pylist(), dtype=np.float64)
    x[3, 0] = np.nan
    ids = t.column("item_id").to_pylist()
    ids[7] = ids[6]
    lines = ["item_id," + ",".join(f"feature_{j}" for j in range(DIM))]
    lines += [f"{i}," + ",".join("nan" if np.isnan(v) else repr(float(v)) for v in row) for i, row in zip(ids, x)]
    path.write_text("\n".join(lines) + "\n")
    return ids, x


def test_features_file_to_parquet_with_bad_rows_reported(home, capsys):
    tmp_path, fake = home
    ids, x = _csv_with_bad_rows(tmp_path / "q.csv")
    capsys.readouterr()
    out = tmp_path / "out" / "emb.parquet"
    assert main(["embed", "-c", "c", "--input", str(tmp_path / "q.csv"), "--out", str(out), "--json",
                 "--batch-size", "8"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows_read"] == 30 and res["rows"] == 28 and res["rejected"] == 2
    assert res["reject_reasons"] == {"features contains NaN or Inf": 1, "duplicate item_id": 1}
    assert {(e["row"], e["item_id"]) for e in res["rejected_examples"]} >= {(3, ids[3])}
    assert res["out"] == str(out) and res["schema_version"] == 1
    written = pq.read_table(out)
    assert written.column_names == ["item_id", "label", "embedding"]
    good = [i for i in range(30) if i not in (3, 7)]
    assert written.column("item_id").to_pylist() == [ids[i] for i in good]
    expected = fake.embed_features(x[good].astype(np.float32))
    np.testing.assert_allclose(np.array(written.column("embedding").to_pylist()), expected, rtol=1e-5)
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # nothing half-written left


def test_features_file_to_json_lines_on_stdout(home, capsys):
    tmp_path, fake = home
    pq.write_table(feature_table(5, DIM, seed=3, start=7000), tmp_path / "q.parquet")
    capsys.readouterr()
    assert main(["embed", "-c", "c", "--input", str(tmp_path / "q.parquet")]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["item_id"] for r in rows] == [f"i{7000 + i}" for i in range(5)]
    assert len(rows[0]["embedding"]) == fake.output_dim
    assert "embedded 5 of 5 rows" in captured.err
    assert main(["embed", "-c", "c", "--input", str(tmp_path / "q.parquet"), "--json"]) == 2  # needs --out


def test_a_file_of_the_wrong_kind_or_dimension_is_refused(home, capsys):
    tmp_path, _ = home
    pq.write_table(feature_table(5, DIM + 1, seed=3), tmp_path / "wide.parquet")
    (tmp_path / "t.jsonl").write_text('{"item_id": "a", "text": "hello"}\n')
    for name in ("wide.parquet", "t.jsonl"):
        assert main(["embed", "-c", "c", "--input", str(tmp_path / name), "--out", str(tmp_path / "o.parquet")]) == 3  # ValidationError
        assert not (tmp_path / "o.parquet").exists()


def test_text_file_in_memory_through_the_python_api_and_the_encoding_cache(tmp_path, monkeypatch):
    import steward
    from embedding.inference import Embedder
    from embedding.model import TEXT_ENCODER_DIM, HeadSpec, build_head

    seen: list[str] = []

    class FakeEncoder:
        name, version, dim = "fake", "1", TEXT_ENCODER_DIM

        def encode(self, texts):
            seen.extend(texts)
            return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(TEXT_ENCODER_DIM)
                             for t in texts]).astype(np.float32)

    monkeypatch.setattr(embedding.model, "get_text_encoder", lambda device="cpu": FakeEncoder())
    head = build_head(HeadSpec(TEXT_ENCODER_DIM, (8,), 4), 0)
    with steward.open(home=tmp_path / "home") as st:
        st.workspace.store.ingest_table(pa.table({"item_id": ["x"], "text": ["seed"]}), "docs")
        text_embedder = Embedder(head, model_version=1, input_kind="text")
        text_embedder.text_cache = st.workspace.vectors
        monkeypatch.setattr(embedding.inference, "load_embedder", lambda *a, **k: text_embedder)
        src = tmp_path / "q.jsonl"
        src.write_text('{"item_id": "a", "text": "a red bicycle"}\n{"item_id": "b", "text": "   "}\n'
                       '{"item_id": "c", "text": "tax law"}\n')
        res = st.embed("docs", input=src)
        assert (res.rows, res.rejected, res.reject_reasons) == (2, 1, {"text is empty": 1})
        assert res.item_ids == ["a", "c"] and res.embeddings.shape == (2, 4)
        np.testing.assert_allclose(res.embeddings, text_embedder.embed_texts(["a red bicycle", "tax law"]), rtol=1e-5)
        seen.clear()
        again = st.embed("docs", input=src)
        assert seen == []  # encoded once: the second run came from the encoding cache
        np.testing.assert_array_equal(again.embeddings, res.embeddings)
        assert st.to_json(res) == res.to_dict() and "embeddings" not in res.to_dict()


def test_file_source_reports_file_level_problems():
    from embedding.streaming import RejectTally, file_source

    with pytest.raises(ValidationError, match="no such file"):
        list(file_source("/nonexistent/q.parquet", kind="features", dim=4, tally=RejectTally()))
