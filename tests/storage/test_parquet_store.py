from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import NotFoundError, ValidationError
from storage.parquet_store import arrow_to_numpy, features_to_numpy, filter_rows
from tests.factories import feature_table, kill_when_ready

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_ingest_parquet_and_read_back(workspace, tmp_path: Path) -> None:
    table = feature_table(20, dim=8, seed=1).append_column("color", pa.array(["red"] * 20))
    path = tmp_path / "b1.parquet"
    pq.write_table(table, path)
    result = workspace.store.ingest(path, "shop")
    assert (result.batch_seq, result.rows, result.new_items, result.quarantined) == (1, 20, 20, 0)
    back = workspace.store.read("shop")
    assert back["item_id"].to_pylist() == table["item_id"].to_pylist()
    assert back.schema.field("features").type == pa.list_(pa.float32(), 8)
    np.testing.assert_array_equal(features_to_numpy(back), features_to_numpy(table))
    assert back["color"].to_pylist() == ["red"] * 20  # metadata kept
    assert workspace.registry.catalog.get_collection("shop").dim == 8


def test_csv_and_jsonl_are_accepted(workspace, tmp_path: Path) -> None:
    csv = tmp_path / "b.csv"
    csv.write_text("item_id,label,feature_0,feature_1\n007,a,1.0,2.0\n008,b,3.0,4.0\n")
    r1 = workspace.store.ingest(csv, "c")
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text("\n".join(json.dumps({"item_id": f"j{i}", "label": "a", "features": [i, i + 0.5]}) for i in range(3)))
    r2 = workspace.store.ingest(jsonl, "c")
    assert (r1.rows, r2.rows) == (2, 3)
    back = workspace.store.read("c")
    assert back["item_id"].to_pylist() == ["007", "008", "j0", "j1", "j2"]  # "007" stays a string
    np.testing.assert_allclose(features_to_numpy(back)[0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("label,feature_0\na,1.0\n", ".csv", "no 'item_id' column"),
        ("item_id,label\nx,a\n", ".csv", "neither a 'features'"),
        ("this is not parquet", ".parquet", "unreadable as parquet"),
        ("", ".txt", "unknown file type"),
    ],
)
def test_file_level_problems_refuse_and_write_nothing(workspace, tmp_path, content, suffix, message) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message) as info:
        workspace.store.ingest(path, "c")
    assert str(path) in str(info.value)
    assert workspace.registry.catalog.list_collections() == []
    assert _files(Path(workspace.settings.data_uri)) == []


def test_wrong_dimension_is_refused_naming_column_and_expectation(workspace, tmp_path) -> None:
    workspace.store.ingest_table(feature_table(5, dim=8), "c")
    with pytest.raises(ValidationError, match=r"'features' has dimension 4; collection expects 8"):
        workspace.store.ingest_table(feature_table(5, dim=4, prefix="z"), "c", source="other.parquet")
    assert len(workspace.registry.catalog.list_batches("c")) == 1


def test_bad_rows_are_quarantined_with_reasons(workspace) -> None:
    x = np.ones((6, 3), np.float32)
    x[1, 0] = np.nan
    x[2, 2] = np.inf
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)
    feats = pa.array([None if i == 3 else v for i, v in enumerate(feats.to_pylist())], pa.list_(pa.float32(), 3))
    table = pa.table({"item_id": ["a", "b", "c", "d", "e", "a"], "label": ["x"] * 6, "features": feats})
    result = workspace.store.ingest_table(table, "c")
    assert (result.rows, result.quarantined) == (2, 4)
    quarantine = workspace.store.read_quarantine("c", result.batch_seq)
    reasons = dict(zip(quarantine["row"].to_pylist(), quarantine["reason"].to_pylist(), strict=True))
    assert reasons[1] == "features contains NaN or Inf"
    assert reasons[2] == "features contains NaN or Inf"
    assert reasons[3] == "features is null"
    assert reasons[5].startswith("duplicate item_id 'a'")
    assert workspace.store.read("c")["item_id"].to_pylist() == ["a", "e"]


def test_text_collections_quarantine_empty_text(workspace) -> None:
    table = pa.table({"item_id": ["a", "b", "c"], "label": [None, "x", "y"], "text": ["hello", "  ", None]})
    result = workspace.store.ingest_table(table, "docs")
    assert (result.rows, result.quarantined) == (1, 2)
    assert workspace.registry.catalog.get_collection("docs").kind == "text"


def test_same_content_twice_is_a_noop(workspace, tmp_path) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(10), path)
    first = workspace.store.ingest(path, "c")
    second = workspace.store.ingest(path, "c")
    assert not first.skipped_duplicate and second.skipped_duplicate
    assert second.batch_seq == first.batch_seq
    assert "already ingested" in second.describe()
    assert len(workspace.registry.catalog.list_batches("c")) == 1


def test_updates_and_deletes_and_as_of_reads(workspace) -> None:
    store = workspace.store
    store.ingest_table(feature_table(10, dim=4, seed=0), "c")  # i0..i9
    update = feature_table(3, dim=4, seed=5, start=8)  # i8, i9 updated; i10 new
    r2 = store.ingest_table(update, "c")
    assert (r2.new_items, r2.updated_items) == (1, 2)
    tomb = pa.table({
        "item_id": ["i0"], "label": ["c0"],
        "features": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(4, np.float32)), 4), "deleted": [True],
    })
    r3 = store.ingest_table(tomb, "c")
    assert r3.deleted_items == 1

    as_of_1 = store.read("c", as_of=1)
    as_of_2 = store.read("c", as_of=2)
    latest = store.read("c")
    assert sorted(as_of_1["item_id"].to_pylist()) == sorted(f"i{i}" for i in range(10))
    assert sorted(as_of_2["item_id"].to_pylist()) == sorted(f"i{i}" for i in range(11))
    assert "i0" not in latest["item_id"].to_pylist() and latest.num_rows == 10
    # the updated version wins, and as_of=1 still shows the original
    v2 = dict(zip(as_of_2["item_id"].to_pylist(), features_to_numpy(as_of_2), strict=True))
    v1 = dict(zip(as_of_1["item_id"].to_pylist(), features_to_numpy(as_of_1), strict=True))
    np.testing.assert_array_equal(v2["i8"], features_to_numpy(update)[0])
    assert not np.array_equal(v1["i8"], v2["i8"])
    # streaming gives the same rows as the one-shot read
    streamed = pa.Table.from_batches(list(store.iter_batches("c", as_of=2, columns=["label"], batch_size=3)))
    assert sorted(streamed["item_id"].to_pylist()) == sorted(as_of_2["item_id"].to_pylist())
    assert streamed.column_names == ["item_id", "label"]
    # a batch on its own
    assert store.read_batch("c", 2)["item_id"].to_pylist() == ["i8", "i9", "i10"]
    # only the asked-for columns (item_id always), read from the file; an unknown column is left out
    narrow = store.read_batch("c", 2, columns=["label", "nope"])
    assert narrow.column_names == ["item_id", "label"] and narrow["item_id"].to_pylist() == ["i8", "i9", "i10"]
    with pytest.raises(NotFoundError):
        store.read("c", as_of=9)


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, pyarrow.parquet as pq
    from core.settings import load_settings
    from storage.workspace import open_workspace
    import storage.filesystem as fsmod, storage.registry.catalog as regmod

    where = sys.argv[2]
    ready = sys.argv[3]
    def pause(*a, **k):
        open(ready, "w").close()
        time.sleep(600)
    if where == "before-rename":
        real_replace = os.replace
        def slow_replace(src, dst):
            if "/batches/" in str(dst):
                pause()
            return real_replace(src, dst)
        fsmod.os.replace = slow_replace
    else:
        regmod.CatalogStore.add_batch = pause
    ws = open_workspace(load_settings(env={"STEWARD_HOME": sys.argv[1]}))
    ws.store.ingest(sys.argv[4], "c")
    """
)


@pytest.mark.parametrize("where", ["before-rename", "before-register"])
def test_killed_writer_leaves_nothing_half_written(tmp_path, where) -> None:
    from storage.workspace import open_workspace
    from tests.factories import make_settings

    home = tmp_path / "home"
    settings = make_settings(home)
    ws = open_workspace(settings)
    ws.store.ingest_table(feature_table(5, dim=8, prefix="old"), "c")
    src = tmp_path / "big.parquet"
    pq.write_table(feature_table(5000, dim=8, seed=3), src)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(home), where, str(ready), str(src)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    kill_when_ready(proc, ready, timeout=60)

    assert [b.seq for b in ws.registry.catalog.list_batches("c")] == [1]
    assert ws.store.read("c").num_rows == 5
    for path in Path(settings.data_uri, "c", "batches").iterdir():
        if not path.name.startswith(".tmp-"):
            pq.read_table(path)  # every visible file is a complete Parquet file
    # re-running the ingest completes cleanly, exactly once
    result = ws.store.ingest(src, "c")
    assert (result.batch_seq, result.rows) == (2, 5000)
    # ...and removes what the killed writer left behind (its temporary names a dead process)
    assert [p.name for p in Path(settings.data_uri, "c").rglob(".tmp-*")] == []
    assert ws.store.read("c").num_rows == 5005
    assert not math.isnan(features_to_numpy(ws.store.read("c")).sum())


def test_reads_can_leave_excluded_batches_out_as_if_they_never_arrived(workspace) -> None:
    store = workspace.store
    store.ingest_table(feature_table(4, dim=4, seed=0), "c")  # i0..i3
    update = feature_table(3, dim=4, seed=9, start=2)  # rewrites i2, i3 and adds i4
    store.ingest_table(update, "c")
    workspace.registry.catalog.exclude_batch("c", 2, reason="sensor fault")
    everything = store.read("c", columns=["features"])
    trusted = store.read("c", columns=["features"], skip_excluded=True)
    assert sorted(everything.column("item_id").to_pylist()) == ["i0", "i1", "i2", "i3", "i4"]
    assert sorted(trusted.column("item_id").to_pylist()) == ["i0", "i1", "i2", "i3"]
    first = store.read_batch("c", 1)
    keep = dict(zip(first.column("item_id").to_pylist(), features_to_numpy(first).tolist(), strict=True))
    got = dict(zip(trusted.column("item_id").to_pylist(), features_to_numpy(trusted).tolist(), strict=True))
    assert got["i2"] == keep["i2"]  # the excluded batch's rewrite is ignored: the earlier version stands


def test_zero_vectors_are_quarantined_but_a_tombstone_may_carry_zeros(workspace) -> None:
    table = feature_table(4, dim=4, seed=0)
    feats = features_to_numpy(table).copy()
    feats[1] = 0.0
    table = table.set_column(2, "features", pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), 4))
    result = workspace.store.ingest_table(table, "c")
    assert (result.rows, result.quarantined) == (3, 1)
    assert workspace.store.read_quarantine("c", 1)["reason"].to_pylist() == ["features are all zero"]
    tomb = pa.table({"item_id": ["i0"], "label": ["c0"], "deleted": ["yes"],
                     "features": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(4, np.float32)), 4)})
    assert workspace.store.ingest_table(tomb, "c").deleted_items == 1  # "yes" reads as a deletion


def test_an_unreadable_deleted_flag_refuses_the_file_naming_the_value(workspace) -> None:
    table = feature_table(2, dim=4).append_column("deleted", pa.array(["no", "maybe"]))
    with pytest.raises(ValidationError, match="'deleted' has the value 'maybe' at row 1"):
        workspace.store.ingest_table(table, "c")


@pytest.mark.parametrize("kind", ["empty parquet", "header-only csv", "zero-byte parquet"])
def test_files_without_rows_are_refused_clearly(workspace, tmp_path, kind) -> None:
    if kind == "empty parquet":
        path = tmp_path / "e.parquet"
        pq.write_table(pa.table({"item_id": pa.array([], pa.string()),
                                 "features": pa.array([], pa.list_(pa.float32(), 4))}), path)
    elif kind == "header-only csv":
        path = tmp_path / "h.csv"
        path.write_text("item_id,label,feature_0,feature_1\n")
    else:
        path = tmp_path / "z.parquet"
        path.write_bytes(b"")
    with pytest.raises(ValidationError, match="no rows|unreadable") as info:
        workspace.store.ingest(path, "c")
    assert str(path) in str(info.value) and "nothing was written" in str(info.value)
    assert workspace.registry.catalog.list_collections() == []


@pytest.mark.parametrize("name", ["trail\n", "a/b", "", ".hidden", "x" * 129, "new\nline"])
def test_collection_names_are_matched_whole(workspace, name) -> None:
    from storage.parquet_store import check_collection_name

    with pytest.raises(ValidationError, match="not allowed"):
        check_collection_name(name)
    with pytest.raises(ValidationError):
        workspace.store.ingest_table(feature_table(2, dim=4), name)
    assert workspace.registry.catalog.list_collections() == []


def test_identical_concurrent_ingests_all_say_already_ingested(workspace, monkeypatch) -> None:
    """Forced interleaving: the second ingest passes the duplicate check before the first registers."""
    table = feature_table(3, dim=4)
    first = workspace.store.ingest_table(table, "c")
    real = workspace.registry.catalog.find_batch_by_hash
    calls = []

    def not_yet_on_the_first_look(collection, content_hash):
        calls.append(content_hash)
        return None if len(calls) == 1 else real(collection, content_hash)

    monkeypatch.setattr(workspace.registry.catalog, "find_batch_by_hash", not_yet_on_the_first_look)
    second = workspace.store.ingest_table(table, "c")
    assert second.skipped_duplicate and second.batch_seq == first.batch_seq == 1
    assert "already ingested" in second.describe()
    assert [b.seq for b in workspace.registry.catalog.list_batches("c")] == [1]


def test_abandoned_temporaries_are_swept_by_a_rerun_and_by_gc(workspace, tmp_path) -> None:
    import socket

    from storage.filesystem import temporary_is_abandoned
    from storage.retention import collect_garbage

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = socket.gethostname().replace("-", "_").replace("/", "_")[:40]
    name = f".tmp-{host}-{dead}-{'0' * 32}"
    assert temporary_is_abandoned(name, time.time())
    assert not temporary_is_abandoned(f".tmp-{host}-{os.getpid()}-{'0' * 32}", time.time())  # a live writer
    assert not temporary_is_abandoned(".tmp-otherhost-1-x", time.time())  # another host: only once old
    assert temporary_is_abandoned(".tmp-0123abcd", time.time() - 3 * 24 * 3600)  # the old naming, days old

    workspace.store.ingest_table(feature_table(3, dim=4), "c")
    batches = Path(workspace.settings.data_uri, "c", "batches")
    (batches / name).write_bytes(b"half a parquet file")
    workspace.store.ingest_table(feature_table(3, dim=4, seed=5, prefix="n"), "c")  # a rerun sweeps
    assert not (batches / name).exists()

    (batches / name).write_bytes(b"half a parquet file")
    art = Path(workspace.settings.artifacts_uri) / "ab"
    art.mkdir(parents=True, exist_ok=True)
    (art / name).write_bytes(b"half an index")
    workspace.registry.models.register_model("c", config={}, metrics={},
                                             artifacts={"weights": workspace.artifacts.put_bytes(b"w")})
    result = collect_garbage(workspace.registry, workspace.artifacts, "c", keep=1, store=workspace.store)
    assert sorted(Path(p).name for p in result.temporaries_removed) == [name, name]
    assert "removed 2 temporary files left by killed writers" in result.describe()
    assert not (batches / name).exists() and not (art / name).exists()


@pytest.mark.parametrize("values,arrow_type", [
    ([0.5, 1.5, -2.0, 3.25, 4.0], pa.float32()),
    ([0.5, 1.5, -2.0, 3.25, 4.0], pa.float64()),
    ([3, -1, 7, 0, 9], pa.int64()),
    ([3, 1, 7, 0, 9], pa.int32()),
])
def test_arrow_to_numpy_reads_the_buffer_as_to_numpy_does_including_slices_and_chunks(values, arrow_type):
    arr = pa.array(values, type=arrow_type)
    for piece, expected in ((arr, values), (arr.slice(2), values[2:]), (arr.slice(1, 3), values[1:4]),
                            (pa.chunked_array([arr.slice(0, 2), arr.slice(2)]), values)):
        got = arrow_to_numpy(piece)
        assert got.tolist() == expected and got.dtype == arr.to_numpy().dtype
    assert arrow_to_numpy(arr.slice(5)).tolist() == []
    with_null = pa.array([1.0, None, 2.0], type=arrow_type if arrow_type in (pa.float32(), pa.float64()) else None)
    assert np.isnan(arrow_to_numpy(with_null)[1])  # nulls go through Arrow's own conversion


def test_filter_rows_keeps_the_masked_rows_in_order_and_refuses_a_mask_of_another_length():
    table = pa.table({"item_id": [f"i{k}" for k in range(11)], "x": list(range(11))})
    mask = np.array([k % 3 == 0 for k in range(11)])
    assert filter_rows(table, mask).column("item_id").to_pylist() == ["i0", "i3", "i6", "i9"]
    assert filter_rows(table, np.zeros(11, bool)).num_rows == 0
    with pytest.raises(ValidationError, match="10 values for a table of 11 rows"):
        filter_rows(table, mask[:10])


def test_reading_filtering_and_converting_features_does_not_import_pandas(tmp_path):
    # pandas costs a short command 0.2-0.3 s; the drift path reads, filters and converts without it.
    path = tmp_path / "t.parquet"
    pq.write_table(feature_table(9, 4), path)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import pyarrow.parquet as pq
        from storage.parquet_store import arrow_to_numpy, features_to_numpy, filter_rows
        t = pq.ParquetFile({str(path)!r}).read()
        x = features_to_numpy(filter_rows(t, np.arange(t.num_rows) % 2 == 0))
        assert x.shape == (5, 4), x.shape
        print('pandas' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
