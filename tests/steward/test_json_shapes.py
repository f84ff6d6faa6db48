"""One JSON shape per object: the CLI's --json and the HTTP API agree (status, a model version, a search
result, a production change, the alert history), every object has schema_version, timestamps are
ISO-8601 UTC, and docs/JSON.md lists exactly the fields they have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.factories import feature_table, make_settings
from tests.json_docs import documented_fields as _documented

REPO = Path(__file__).resolve().parents[2]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TIMESTAMP_KEYS = {"created_at", "at", "updated_at", "pinned_at", "since", "excluded_at", "delivered_at"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A home with two trained versions (v2 in production, its index built) and one drift alert."""
    import steward

    root = tmp_path_factory.mktemp("shapes")
    for i, (n, seed, classes) in enumerate([(240, 0, 3), (240, 1, 4)], 1):
        pq.write_table(feature_table(n, dim=8, n_classes=classes, seed=seed, start=1000 * i), root / f"b{i}.parquet")
    small = {"epochs": 3, "hidden_dims": (16,), "out_dim": 8, "buffer_budget": 40}
    lenient = {"gate_max_drop_vs_raw": None, "gate_max_old_map_drop": 1, "gate_max_overall_map_drop": 1,
               "gate_max_class_map_drop": None}  # the shapes matter here, not the models' quality
    with steward.open(home=root / "home", **lenient) as st:
        st.ingest("shop", root / "b1.parquet")
        v1 = st.retrain("shop", progress=False, **small).model
        st.promote("shop", v1.version, st.build_index("shop", v1.version, progress=False).id, reason="first")
        st.ingest("shop", root / "b2.parquet")
        st.drift("shop", notify=False)
        out = st.retrain("shop", full=True, progress=False, **small)
        st.build_index("shop", out.model.version, progress=False)
    return root / "home"


def _cli(home: Path, capsys, monkeypatch, *args: str) -> Any:
    from steward.cli import main

    monkeypatch.setenv("STEWARD_HOME", str(home))
    for var in ("STEWARD_CONFIG", "STEWARD_DATABASE_URL", "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    capsys.readouterr()
    assert main([*args, "--json"]) in (0, 10), capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def api(home: Path, monkeypatch):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app
    from storage.workspace import open_workspace

    settings = make_settings(home, STEWARD_API_TOKEN="t")
    ws = open_workspace(settings)
    with TestClient(create_app(settings, workspace=ws, poll_seconds=0.1)) as client:
        yield client
    ws.close()


def _check_conventions(obj: Any, where: str) -> None:
    if isinstance(obj, list):
        for o in obj:
            _check_conventions(o, where)
        return
    assert obj.get("schema_version") == 1, where
    for key, value in obj.items():
        if key in TIMESTAMP_KEYS and value is not None:
            assert ISO.match(value), f"{where}.{key}={value!r} is not ISO-8601 UTC"


def test_cli_and_api_agree(home: Path, api, capsys, monkeypatch) -> None:
    status_cli = _cli(home, capsys, monkeypatch, "status", "-c", "shop")
    status_api = api.get("/status", params={"collection": "shop"}).json()["collections"]["shop"]
    api_only = {"serving", "serving_matches_production", "last_load_failure"}
    assert {k: v for k, v in status_api.items() if k not in api_only} == status_cli
    assert len(json.dumps(status_cli)) < 3000  # compact: one collection's state, not its history

    model_cli = _cli(home, capsys, monkeypatch, "models", "show", "-c", "shop", "2")
    assert api.get("/models/2", params={"collection": "shop"}).json() == model_cli
    assert api.get("/models", params={"collection": "shop"}).json() == _cli(home, capsys, monkeypatch, "models",
                                                                            "list", "-c", "shop")

    search_cli = _cli(home, capsys, monkeypatch, "search", "-c", "shop", "--item-id", "i1000", "i1001", "--k", "3")
    search_api = api.post("/search", json={"collection": "shop", "item_ids": ["i1000", "i1001"], "k": 3}).json()
    assert search_api == search_cli
    assert search_cli["results"][0]["query_item_id"] == "i1000" and len(search_cli["results"][0]["item_ids"]) == 3

    change_cli = _cli(home, capsys, monkeypatch, "promote", "-c", "shop", "--model", "2")
    history = api.get("/versions", params={"collection": "shop"}).json()["collections"]["shop"]["history"]
    [same] = [c for c in history if c["id"] == change_cli["id"]]
    from steward.api.security import redact_actors  # pages anyone can read show user@… (no host, no PID)

    expected = {k: v for k, v in change_cli.items() if k != "pinned"}
    expected["actor"] = redact_actors(expected["actor"].encode()).decode()
    assert same == expected and expected["actor"].endswith("@\u2026")
    rolled = api.post("/rollback", json={"collection": "shop", "reason": "api test", "actor": "ana"},
                      headers={"Authorization": "Bearer t"}).json()
    assert set(rolled) - {"serving"} == set(change_cli) and rolled["kind"] == "rollback" and rolled["pinned"]

    suspects_cli = _cli(home, capsys, monkeypatch, "labels", "suspect", "-c", "shop", "--batch", "2")
    assert api.get("/labels/suspect", params={"collection": "shop", "batch": 2}).json() == suspects_cli
    runs_cli = _cli(home, capsys, monkeypatch, "runs", "list", "-c", "shop")
    runs_redacted = json.loads(redact_actors(json.dumps(runs_cli, ensure_ascii=False).encode()).decode())
    assert api.get("/runs", params={"collection": "shop"}).json() == runs_redacted and len(runs_cli) == 2

    alerts_cli = _cli(home, capsys, monkeypatch, "alerts", "list", "-c", "shop")
    redacted = json.loads(redact_actors(json.dumps(alerts_cli, ensure_ascii=False).encode()).decode())
    assert api.get("/alerts", params={"collection": "shop"}).json() == redacted
    assert alerts_cli and alerts_cli[0]["kind"] == "drift"
    assert alerts_cli[0]["open"] is False and alerts_cli[0]["answered_by"]["kind"] == "promote"  # kept, answered

    for name, obj in [("status", status_cli), ("model", model_cli), ("search", search_cli), ("change", change_cli),
                      ("rollback", rolled), ("alerts", alerts_cli)]:
        _check_conventions(obj, name)
    assert model_cli["metrics"]["schema_version"] == 1  # the ModelReport inside


def test_docs_list_every_field(home: Path, capsys, monkeypatch, tmp_path: Path) -> None:
    docs = _documented()
    b3 = feature_table(30, dim=8, seed=5, start=9000)
    labels = b3.column("label").to_pylist()
    labels[0] = "c1" if labels[0] != "c1" else "c0"  # one wrong label for `labels suspect` to find
    b3 = b3.set_column(b3.schema.get_field_index("label"), "label", pa.array(labels))
    pq.write_table(b3, tmp_path / "b3.parquet")
    produced = {
        "collection_status": _cli(home, capsys, monkeypatch, "status", "-c", "shop"),
        "model_version": _cli(home, capsys, monkeypatch, "models", "show", "-c", "shop", "1"),
        "index_version": _cli(home, capsys, monkeypatch, "index", "list", "-c", "shop")[0],
        "search_result": _cli(home, capsys, monkeypatch, "search", "-c", "shop", "--item-id", "i1000"),
        "alias_change": (_cli(home, capsys, monkeypatch, "promote", "-c", "shop", "--model", "2"),
                         _cli(home, capsys, monkeypatch, "rollback", "-c", "shop", "--to", "1"))[1],
        "alias_target": _cli(home, capsys, monkeypatch, "unpin", "-c", "shop"),
        "alert": _cli(home, capsys, monkeypatch, "alerts", "list", "-c", "shop")[0],
        "batch": _cli(home, capsys, monkeypatch, "batches", "list", "-c", "shop")[0],
        "ingest_result": _cli(home, capsys, monkeypatch, "ingest", "-c", "shop", str(tmp_path / "b3.parquet")),
        "drift_summary": _cli(home, capsys, monkeypatch, "drift", "-c", "shop", "--no-notify"),
        "gc_result": _cli(home, capsys, monkeypatch, "gc", "-c", "shop", "--keep", "1", "--dry-run"),
        "training_run": _cli(home, capsys, monkeypatch, "runs", "list", "-c", "shop")[0],
        "suspect_labels": _cli(home, capsys, monkeypatch, "labels", "suspect", "-c", "shop"),
        "embed_file_result": _cli(home, capsys, monkeypatch, "embed", "-c", "shop", "--input",
                                  str(tmp_path / "b3.parquet"), "--out", str(tmp_path / "e.parquet")),
    }
    assert produced["training_run"] == _cli(home, capsys, monkeypatch, "runs", "show", str(produced["training_run"]["id"]))
    produced["suspect_labels.suspects[]"] = produced["suspect_labels"]["suspects"][0]
    assert produced["suspect_labels"]["suspects"][0]["item_id"] == "i9000"
    produced["search_result.results[]"] = produced["search_result"]["results"][0]
    produced["gc_result.versions[]"] = produced["gc_result"]["versions"][0]
    for name, obj in produced.items():
        assert name in docs, f"docs/JSON.md has no section for {name}"
        assert set(obj) <= docs[name], f"{name}: undocumented fields {sorted(set(obj) - docs[name])}"
        assert docs[name] - set(obj) <= _optional(name), f"{name}: documented but absent {sorted(docs[name] - set(obj))}"
    assert Path(produced["ingest_result"]["quarantine_path"] or "/").is_absolute()
    assert Path(produced["batch"]["data_path"]).is_absolute()


def _optional(name: str) -> set[str]:
    """Fields only some commands or the API add (each marked so in docs/JSON.md)."""
    return {"alias_change": {"serving", "batches_added", "batches_excluded"},
            "alias_target": {"rolled_away"}, "model_version": {"indexes"},
            "collection_status": {"serving", "serving_matches_production", "last_load_failure"}}.get(name, set())
