"""MLflow mirrors steward's registry: runs with params, per-epoch loss, metrics and the gate; registered
versions; the production alias on promote and rollback. Against a local sqlite MLflow store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedding.config import TrainConfig

from .conftest import make_blobs_nonlinear

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")

REPO = Path(__file__).resolve().parents[2]
CFG = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=5, incremental_epochs=3, batch_size=64,
                  buffer_budget=60, buffer_min_quota=2)


def _table(x, y, start):
    return pa.table({
        "item_id": [f"it{start + i}" for i in range(len(y))],
        "label": list(y),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1]),
    })


def test_training_runs_versions_and_the_production_alias_reach_mlflow(tmp_path: Path) -> None:
    from embedding.observers import open_observed_workspace
    from embedding.retrain import retrain
    from tests.factories import make_settings

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = make_settings(tmp_path / "home", STEWARD_MLFLOW_TRACKING_URI=uri)
    ws = open_observed_workspace(settings)
    x, y = make_blobs_nonlinear(n_classes=5, per_class=40, dim=12, seed=3)
    first = np.isin(y, ["c0", "c1", "c2"])
    ws.store.ingest_table(_table(x[first], y[first], 0), "shop")
    v1 = retrain(ws, "shop", config=CFG, progress=False).model
    ws.production.promote("shop", v1.version, reason="first")
    ws.store.ingest_table(_table(x[~first], y[~first], 1000), "shop")
    out2 = retrain(ws, "shop", progress=False)
    v2 = out2.model
    ws.production.promote("shop", v2.version, reason="second")

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("steward/shop")
    runs = {r.data.tags["steward.model_version"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"1", "2"}
    run2 = runs["2"]
    assert run2.data.params["train.loss"] == CFG.loss and run2.data.params["parent_version"] == "1"
    assert run2.data.params["mode"] == "incremental"
    losses = client.get_metric_history(run2.info.run_id, "train.loss")
    assert [m.step for m in losses] == [row["epoch"] for row in out2.report.training.history]
    assert losses[0].value == pytest.approx(out2.report.training.history[0]["loss"])
    assert run2.data.metrics["eval.overall.map_at_r"] == pytest.approx(out2.report.evaluation.overall.map_at_r)
    assert run2.data.metrics["gate.accepted"] == (1.0 if out2.decision.accepted else 0.0)
    assert run2.data.tags["steward.gate"] == ("accepted" if out2.decision.accepted else "rejected")
    assert "baseline.production.overall.map_at_r" in run2.data.metrics  # v1 scored on the same items

    name = "steward-shop"
    versions = {v.tags["steward.model_version"]: v.version for v in client.search_model_versions(f"name='{name}'")}
    assert set(versions) == {"1", "2"}
    assert client.get_registered_model(name).aliases == {"production": versions["2"]}

    ws.production.rollback("shop", reason="v2 misranks")
    assert client.get_registered_model(name).aliases == {"production": versions["1"]}
    ws.close()


def test_a_version_unknown_to_mlflow_removes_the_alias_and_a_down_mlflow_never_blocks(tmp_path: Path,
                                                                                    caplog) -> None:
    from embedding.mlflow_tracking import MlflowTracking
    from storage.registry.entities import AliasChange

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = MlflowTracking(uri)
    client = tracking.client
    client.create_registered_model("steward-shop")
    run = client.create_run(client.create_experiment("x"))
    version = client.create_model_version("steward-shop", source=f"runs:/{run.info.run_id}/model",
                                          run_id=run.info.run_id, tags={"steward.model_version": "4"}).version
    client.set_registered_model_alias("steward-shop", "production", version)
    from datetime import UTC, datetime

    change = AliasChange(1, "shop", "production", 4, None, 3, None, "ops", "rollback", datetime.now(UTC), "rollback")
    tracking.alias_changed(change)  # v3 was trained before MLflow was configured
    assert client.get_registered_model("steward-shop").aliases == {}

    from storage.hooks import Observers

    class Broken:
        def alias_changed(self, change):
            raise ConnectionError("mlflow is down")

    Observers([Broken()]).alias_changed(change)  # logged, not raised
    assert "could not record" in caplog.text and "mlflow is down" in caplog.text


def test_nothing_imports_mlflow_when_it_is_not_configured(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from embedding.observers import open_observed_workspace\n"
        "from tests.factories import make_settings\n"
        f"ws = open_observed_workspace(make_settings({str(tmp_path / 'h')!r}))\n"
        "assert not ws.observers\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
