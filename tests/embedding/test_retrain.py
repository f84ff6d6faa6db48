import numpy as np
import pyarrow as pa
import pytest

from core.errors import NotFoundError
from core.settings import GateSettings
from embedding.config import TrainConfig
from embedding.inference import load_embedder, load_prototypes
from embedding.retrain import retrain

from .conftest import make_blobs_nonlinear

CFG = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=8, incremental_epochs=4, batch_size=64,
                  buffer_budget=60, buffer_min_quota=2)


def _table(x, y, start):
    return pa.table({
        "item_id": [f"it{start + i}" for i in range(len(y))],
        "label": list(y),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1]),
    })


@pytest.fixture
def two_batches():
    x, y = make_blobs_nonlinear(n_classes=5, per_class=50, dim=12, seed=3)
    first = np.isin(y, ["c0", "c1", "c2"])
    return _table(x[first], y[first], 0), _table(x[~first], y[~first], 1000)


def test_first_retrain_then_incremental_update(workspace, two_batches):
    b1, b2 = two_batches
    workspace.store.ingest_table(b1, "shop")
    with pytest.raises(NotFoundError):
        load_embedder(workspace, "shop")
    out1 = retrain(workspace, "shop", config=CFG, progress=False)
    assert out1.decision.accepted and "first model" in out1.decision.reasons[0]
    assert out1.model.status == "candidate" and out1.model.version == 1
    assert out1.model.config["classes"] == ["c0", "c1", "c2"]
    assert out1.report.evaluation.overall.map_at_r > 0.5
    runs = workspace.registry.runs.list_training_runs("shop")
    assert runs[-1].status == "finished" and runs[-1].buffer_artifact == out1.model.artifacts["buffer"]

    workspace.registry.models.switch_alias("shop", 1, actor="test", reason="first")
    emb = load_embedder(workspace, "shop")
    assert emb.model_version == 1 and emb.output_dim == 16
    vecs = emb.embed_table(b1)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)

    workspace.store.ingest_table(b2, "shop")
    out2 = retrain(workspace, "shop", progress=False)  # config taken from production
    assert out2.model.parent_version == 1 and out2.model.trained_on_batch == 2
    assert out2.model.config["classes"][:3] == ["c0", "c1", "c2"]
    assert set(out2.model.config["classes"][3:]) == {"c3", "c4"}
    assert out2.report.training.mode == "incremental"
    assert out2.report.training.rehearsal_items > 0
    assert set(out2.report.forgetting) <= {"c0", "c1", "c2"}
    assert out2.report.evaluation.new.map_at_r > out2.report.baselines["production"].new.map_at_r
    assert out2.report.compatibility["comparable"]
    # Prototypes are recomputed under the new model: all five classes, unit norm, differ from v1's.
    p1, p2 = load_prototypes(workspace, "shop", 1), load_prototypes(workspace, "shop", 2)
    assert p1.labels == ("c0", "c1", "c2") and p2.labels == ("c0", "c1", "c2", "c3", "c4")
    assert not np.allclose(p1.vectors, p2.vectors[:3])
    np.testing.assert_allclose(np.linalg.norm(p2.vectors, axis=1), 1.0, rtol=1e-5)
    # ... and equal the normalised class means of the new model's embeddings of the stored data.
    emb2 = load_embedder(workspace, "shop", 2)
    buf_items = workspace.artifacts.get_bytes(out2.model.artifacts["buffer"])
    assert len(buf_items) > 0
    assert emb2.model_version == 2


def test_gate_rejection_registers_a_rejected_version(workspace, two_batches):
    b1, b2 = two_batches
    workspace.store.ingest_table(b1, "shop")
    retrain(workspace, "shop", config=CFG, progress=False)
    workspace.registry.models.switch_alias("shop", 1, actor="test", reason="first")
    workspace.store.ingest_table(b2, "shop")
    # An impossible requirement (old classes must improve by 1.0) plants a certain failure.
    out = retrain(workspace, "shop", thresholds=GateSettings(max_old_map_drop=-1.0), progress=False)
    assert not out.decision.accepted
    assert out.model.status == "rejected"
    assert "MAP@R on old classes fell" in out.model.status_reason
    assert workspace.registry.models.get_alias("shop").model_version == 1


def test_full_retrain_from_scratch(workspace, two_batches):
    b1, b2 = two_batches
    workspace.store.ingest_table(b1, "shop")
    workspace.store.ingest_table(b2, "shop")
    out = retrain(workspace, "shop", full=True, config=CFG, progress=False)
    assert out.report.training.mode == "full" and out.model.parent_version is None
    assert len(out.model.config["classes"]) == 5




def test_whitened_blend_with_a_chosen_skip_weight_is_recorded_and_served_without_torch(workspace, two_batches):
    b1, b2 = two_batches
    workspace.store.ingest_table(b1, "shop")
    workspace.store.ingest_table(b2, "shop")
    cfg = CFG.replace(head="blend", blend_skip="whitened", blend_head_loss=True, skip_weight_auto=True)
    out = retrain(workspace, "shop", full=True, config=cfg, progress=False)
    choice = out.model.config["skip_weight_choice"]  # 5 classes: a validation fit left 2 out
    assert choice is not None and len(choice["trials"]) > 1
    arch = out.model.config["architecture"]
    assert arch["skip"] == "whitened" and arch["skip_weight"] == choice["skip_weight"]
    emb = load_embedder(workspace, "shop", out.model.version)  # the numpy path, from the npz arrays
    vecs = emb.embed_table(b1)
    assert vecs.shape[1] == 12 + cfg.out_dim
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
