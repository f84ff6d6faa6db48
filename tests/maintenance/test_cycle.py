"""The maintenance cycle run in process (the same sequence the Prefect flow runs), on real digits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedding.config import TrainConfig
from maintenance.cycle import run_maintenance
from maintenance.steps import LibrarySteps
from steward.demo import digits_stream, write_batch

SMALL = TrainConfig(hidden_dims=(64,), out_dim=32, epochs=12, incremental_epochs=6, patience=3, buffer_budget=150)


@pytest.fixture
def ws(workspace, monkeypatch):
    import embedding.retrain

    monkeypatch.setattr(embedding.retrain, "_resolve_config",
                        lambda prod, config, device: config or SMALL)  # small heads: seconds, not minutes
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    return workspace


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digits")
    x, y, stream = digits_stream(5, seed=0)
    out = {b.name.split("-", 1)[1]: write_batch(folder / f"{b.name}.parquet", x, y, b, seed=i)
           for i, b in enumerate(stream, 1)}
    out["faulty"] = _faulty(folder / "faulty.parquet", x, y, stream[1])
    return out


def _faulty(path: Path, x: np.ndarray, y: np.ndarray, batch) -> Path:
    """More digits 0-4 through a broken sensor: 10% zero rows, 10% constant rows, noise on the rest."""
    rng = np.random.default_rng(7)
    feats = x[batch.item_index] + rng.normal(0, 0.05, size=(len(batch.item_index), x.shape[1]))
    n = len(feats)
    rows = rng.permutation(n)
    feats[rows[: n // 10]] = 0.0
    feats[rows[n // 10: n // 5]] = rng.uniform(0.2, 0.8, size=(n // 5 - n // 10, 1))
    pq.write_table(pa.table({
        "item_id": [f"bad{i}" for i in batch.item_index],
        "label": [str(int(v)) for v in y[batch.item_index]],
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.astype(np.float32).ravel()), x.shape[1]),
    }), path)
    return path


def run(ws, *files: Path, policy: str | None = None):
    return run_maintenance(ws, LibrarySteps(ws), "digits", [str(f) for f in files], retrain_on=policy)


def _trained_item_ids(ws) -> set[str]:
    from embedding.inference import load_buffer

    ids: set[str] = set()
    for model in ws.registry.models.list_models("digits"):
        ids |= set(load_buffer(ws, model).item_ids.tolist())
    return ids


def test_an_operators_rollback_sticks_through_later_runs(ws, batches) -> None:
    assert run(ws, batches["digits-0-4"]).outcome.startswith("promoted model v1")
    assert run(ws, batches["new-5-7"]).outcome.startswith("promoted model v2")
    ws.production.rollback("digits", reason="v2 answers badly", actor="ops")
    for policy in (None, "new-data", "always"):
        summary = run(ws, policy=policy)
        target = ws.production.target("digits")
        assert (target.model_version, target.pinned) == (1, True), summary.outcome
        assert summary.production["pinned"] is True
    assert "production is pinned by ops" in summary.outcome or "identical to v2" in summary.outcome
    ws.production.unpin("digits")
    after = run(ws, policy="always")
    assert ws.production.target("digits").model_version != 2  # never the version rolled away from
    assert "identical to v2" in after.outcome or after.outcome.startswith("promoted")


@pytest.mark.parametrize("policy", ["drift", "new-data", "always"])
def test_a_faulty_batch_is_never_trained_on(ws, batches, policy) -> None:
    run(ws, batches["digits-0-4"])
    summary = run(ws, batches["faulty"], policy=policy)
    [quality] = summary.quality
    assert not quality.passed and quality.excluded
    assert "constant" in quality.summary and "quarantined" in quality.summary  # both faults named
    batch = ws.registry.catalog.get_batch("digits", 2)
    assert batch.excluded and batch.quality["passed"] is False
    [alert] = [a for a in ws.registry.monitoring.list_alerts("digits") if a.kind == "data_quality"]
    assert "batch 2" in alert.message and alert.payload["batch_seq"] == 2
    assert not any(i.startswith("bad") for i in _trained_item_ids(ws))
    assert all(2 not in run_.batches for run_ in ws.registry.runs.list_training_runs("digits"))
    if policy != "always":
        assert summary.outcome.startswith("no retrain: batch 2 is excluded from training: failed data-quality")
    assert ws.production.target("digits").model_version in (1, 2)


def test_a_scheduled_run_after_a_manual_drift_check_does_nothing_and_says_why(ws, batches) -> None:
    from monitoring.check import check_drift

    run(ws, batches["digits-0-4"])
    run(ws, batches["new-5-7"])  # v2, trained on batch 2
    check_drift(ws, "digits", notify=False)  # a person checks the newest batch under v2
    summary = run(ws, policy="new-data")
    assert summary.outcome == "no retrain: production already trained on batch 2"


def test_a_crashed_training_run_is_marked_failed_by_the_next_run(ws, batches) -> None:
    import socket

    from storage.registry.orm import TrainingRunRow

    run(ws, batches["digits-0-4"])
    ws.store.ingest(str(batches["more-0-4"]), "digits")
    stale = ws.registry.runs.start_training_run("digits", kind="incremental", batches=[2])
    with ws.registry.db.session() as s:
        s.get(TrainingRunRow, stale.id).owner = f"killed@{socket.gethostname()}:99999999"
    summary = run(ws)
    assert summary.failed_runs == (stale.id,)
    assert {r.id: r.status for r in ws.registry.runs.list_training_runs("digits")}[stale.id] == "failed"


def test_manual_promotion_mode_leaves_an_approved_candidate_for_a_person(ws, batches) -> None:
    from monitoring.status import collection_status

    manual = dataclasses.replace(ws, settings=ws.settings.replace(**{"maintenance.promotion": "manual"}))
    summary = run(manual, batches["digits-0-4"])
    assert summary.candidate.status == "approved" and summary.index is not None
    assert "waiting for `steward promote`" in summary.outcome
    assert manual.production.target("digits") is None
    assert collection_status(manual, "digits").awaiting_promotion == (1,)
    manual.production.promote("digits", 1, summary.index.id, reason="looked good", actor="ops")
    assert manual.production.target("digits").model_version == 1
    assert collection_status(manual, "digits").awaiting_promotion == ()


def test_an_all_quarantined_batch_is_reported_not_raised(ws, batches, tmp_path) -> None:
    run(ws, batches["digits-0-4"])
    bad = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"item_id": ["n1", "n2", "n3"], "label": ["1", "2", "3"],
                             "features": pa.FixedSizeListArray.from_arrays(pa.array([float("nan")] * 192), 64)}),
                   bad)
    summary = run(ws, bad)
    assert summary.outcome.startswith("no retrain: batch 2 is excluded") and "100.0% of rows were quarantined" in \
        summary.outcome
    assert ws.production.target("digits").model_version == 1


def test_auto_promotion_waits_for_a_shadow_sample_then_promotes(ws, batches) -> None:
    from datetime import UTC, datetime

    from storage.registry.entities import ShadowRecord

    gated = dataclasses.replace(ws, settings=ws.settings.replace(**{"gate.min_shadow_queries": 30}))
    assert run(gated, batches["digits-0-4"]).outcome.startswith("promoted model v1")  # nothing to shadow yet
    summary = run(gated, batches["new-5-7"])
    assert summary.candidate.status == "candidate" and summary.index is not None, summary.outcome
    assert "gate.min_shadow_queries needs 30 shadow queries" in summary.outcome and "has 0" in summary.outcome
    assert gated.production.target("digits").model_version == 1

    def record(shadow_model: int, production_model: int, queries: int) -> ShadowRecord:
        return ShadowRecord("digits", production_model, 1, shadow_model, summary.index.id, 10, queries, 0.9 * queries,
                            0, 0, 0, 1.0, 1.0, datetime.now(UTC))

    # Records against another production version, or of another version, do not count.
    gated.registry.shadow.record([record(2, 7, 50), record(9, 1, 50), record(2, 1, 20)])
    assert "has 20" in run(gated).outcome
    gated.registry.shadow.record([record(2, 1, 10)])
    assert run(gated).outcome.startswith("promoted model v2")
