"""The retrain service's governance: groups in every evaluation, suspect labels, reproducible runs."""

import numpy as np
import pyarrow as pa
import pytest

from core.errors import NotFoundError, ValidationError
from embedding.config import TrainConfig
from embedding.label_noise import flip_labels
from embedding.retrain import retrain, retrain_from_run
from maintenance.steps import candidate_outcome
from storage.workspace import open_workspace
from tests.factories import make_settings

from .conftest import make_blobs_nonlinear

CFG = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=6, incremental_epochs=3, batch_size=64,
                  buffer_budget=60, buffer_min_quota=2, cpu_threads=1)


def _table(x, y, start, groups=None):
    cols = {
        "item_id": [f"it{start + i}" for i in range(len(y))],
        "label": list(y),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1]),
    }
    if groups is not None:
        cols["group"] = list(groups)
    return pa.table(cols)


@pytest.fixture
def grouped_ws(tmp_path):
    ws = open_workspace(make_settings(tmp_path / "home", STEWARD_EVALUATION_GROUP_COLUMN="group"))
    yield ws
    ws.registry.dispose()


def test_a_small_group_that_arrives_late_is_reported_and_gated(grouped_ws):
    ws = grouped_ws
    x, y = make_blobs_nonlinear(n_classes=4, per_class=120, dim=12, seed=3)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    first, second = order[:300], order[300:]
    # Batch 1: no group column at all. Batch 2: mostly "main", and a small, noisier "late" group.
    ws.store.ingest_table(_table(x[first], y[first], 0), "shop")
    out1 = retrain(ws, "shop", config=CFG, progress=False)
    ev1 = out1.report.evaluation
    assert set(ev1.per_group) == {"(none)"} and ev1.group_gap is None and ev1.group_column == "group"
    ws.registry.models.switch_alias("shop", 1, actor="test", reason="first")

    groups = np.where(np.arange(len(second)) % 5 == 0, "late", "main")
    x2 = x[second].copy()
    late = groups == "late"
    x2[late] += rng.normal(scale=1.0, size=(late.sum(), x2.shape[1])).astype(np.float32)
    ws.store.ingest_table(_table(x2, y[second], 1000, groups), "shop")
    out2 = retrain(ws, "shop", progress=False)
    ev2 = out2.report.evaluation
    assert {"main", "late"} <= set(ev2.per_group)
    assert ev2.per_group["late"].items < ev2.per_group["main"].items
    assert ev2.group_gap is not None and ev2.group_gap > 0
    base = out2.report.baselines["production"]
    assert set(base.per_group) == set(ev2.per_group)  # production scored on the same groups
    check = next(c for c in out2.decision.checks if c.name == "group_gap")
    assert check.limit == ws.settings.gate.max_group_gap_increase
    assert check.drop == pytest.approx(ev2.group_gap - base.group_gap)
    # The stored report carries the groups (what `models show` and the API read).
    from embedding.report import ModelReport

    stored = ModelReport.from_dict(ws.registry.models.get_model("shop", 2).metrics)
    assert stored.evaluation.per_group == ev2.per_group
    assert candidate_outcome(out2.model).group_gap == pytest.approx(ev2.group_gap)


def _flipped_stream(ws):
    x, y = make_blobs_nonlinear(n_classes=4, per_class=60, dim=12, seed=4)
    noisy, flipped = flip_labels(y, 0.1, np.random.default_rng(0))
    ws.store.ingest_table(_table(x, noisy, 0), "shop")
    return flipped


def test_suspect_labels_are_down_weighted_and_counted(workspace):
    _flipped_stream(workspace)
    out = retrain(workspace, "shop", config=CFG.replace(suspect_weight=0.1), progress=False)
    t = out.report.training
    assert t.suspects_flagged and t.suspects_flagged > 0 and t.suspects_downweighted == t.suspects_flagged
    assert out.report.to_dict()["training"]["suspects_flagged"] == t.suspects_flagged
    c = candidate_outcome(out.model)
    assert c.suspects_flagged == t.suspects_flagged and c.suspects_downweighted == t.suspects_flagged
    assert workspace.registry.runs.list_training_runs("shop")[-1].details["suspects_flagged"] == t.suspects_flagged
    # Off by default: nothing checked, nothing counted.
    off = retrain(workspace, "shop", full=True, config=CFG, progress=False)
    assert off.report.training.suspects_flagged is None and off.report.training.suspects_downweighted == 0


def test_a_run_records_its_experiment_and_from_run_reproduces_its_metrics(workspace):
    _flipped_stream(workspace)
    out1 = retrain(workspace, "shop", config=CFG.replace(seed=7), progress=False)
    run1 = workspace.registry.runs.list_training_runs("shop")[-1]
    d = run1.details
    assert d["seed"] == 7 and d["train_config"] == CFG.replace(seed=7).to_dict() and d["as_of"] == 1
    assert d["full"] is True and d["parent_version"] is None and run1.batches == [1]
    assert {"torch", "numpy", "faiss-cpu", "pytorch-metric-learning", "steward"} <= set(d["libraries"])
    assert d["gate"]["max_group_gap_increase"] == workspace.settings.gate.max_group_gap_increase
    # More data and another production later do not change what the run reproduces.
    workspace.registry.models.switch_alias("shop", 1, actor="test", reason="first")
    x, y = make_blobs_nonlinear(n_classes=4, per_class=20, dim=12, seed=9)
    workspace.store.ingest_table(_table(x, y, 5000), "shop")

    out2 = retrain_from_run(workspace, "shop", run1.id, progress=False)
    run2 = workspace.registry.runs.list_training_runs("shop")[-1]
    assert run2.details["from_run"] == run1.id and run2.details["train_config"] == d["train_config"]
    assert out2.model.trained_on_batch == 1 and out2.model.version == 2
    assert out2.report.evaluation.to_dict() == out1.report.evaluation.to_dict()
    assert out2.report.training.history == out1.report.training.history
    with pytest.raises(NotFoundError):
        retrain_from_run(workspace, "shop", 999, progress=False)
    with pytest.raises(ValidationError, match="belongs to collection"):
        workspace.store.ingest_table(_table(x, y, 9000), "other")
        retrain_from_run(workspace, "other", run1.id, progress=False)


def test_an_incremental_run_is_reproduced_from_its_parent_even_after_production_moved(workspace):
    x, y = make_blobs_nonlinear(n_classes=4, per_class=60, dim=12, seed=6)
    half = np.arange(len(y)) % 2 == 0
    workspace.store.ingest_table(_table(x[half], y[half], 0), "shop")
    retrain(workspace, "shop", config=CFG, progress=False)
    workspace.registry.models.switch_alias("shop", 1, actor="test", reason="first")
    workspace.store.ingest_table(_table(x[~half], y[~half], 1000), "shop")
    out2 = retrain(workspace, "shop", progress=False)
    run2 = workspace.registry.runs.list_training_runs("shop")[-1]
    assert run2.details["full"] is False and run2.details["parent_version"] == 1 and run2.batches == [2]
    workspace.registry.models.switch_alias("shop", 2, actor="test", reason="second")  # production moves on
    out3 = retrain_from_run(workspace, "shop", run2.id, progress=False)
    assert out3.model.parent_version == 1 and out3.report.training.mode == "incremental"
    assert out3.report.evaluation.to_dict() == out2.report.evaluation.to_dict()
    assert out3.report.baselines["production"].to_dict() == out2.report.baselines["production"].to_dict()
