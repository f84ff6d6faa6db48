"""Pure helpers behind /status and the dashboard: they read the typed contracts, never guess keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from embedding.gate import GateDecision
from embedding.metrics import EvaluationReport
from embedding.report import ModelReport, TrainingSummary
from steward.api.views import INDEX_COLUMNS, MODEL_COLUMNS, drift_series, index_row, model_row, open_alerts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report() -> dict:
    evaluation = EvaluationReport.from_dict({
        "num_items": 30, "num_classes": 3,
        "overall": {"map_at_r": 0.8, "precision_at_1": 0.9, "nmi": 0.4},
        "old": {"map_at_r": 0.9}, "new": {"map_at_r": 0.6, "precision_at_1": 0.7},
        "per_class": {"3": {"map_at_r": 0.5, "precision_at_1": 0.5}},
    })
    return ModelReport(evaluation=evaluation, gate=GateDecision(True, ("ok",)),
                       training=TrainingSummary(mode="incremental"),
                       forgetting={"3": 0.02, "4": 0.0, "5": -0.01}).to_dict()


def test_model_columns_are_the_headline_numbers_of_the_model_report():
    row = model_row(_report())
    assert [k for k, _ in MODEL_COLUMNS] == list(row)
    assert (row["map_at_r_all"], row["map_at_r_old"], row["map_at_r_new"], row["p_at_1_all"]) == (0.8, 0.9, 0.6, 0.9)
    assert row["forgetting_max"] == 0.02
    assert abs(row["forgetting_mean"] - 0.01 / 3) < 1e-12


def test_model_row_reads_metrics_written_before_the_contract_and_survives_missing_values():
    legacy = {"overall": {"map_at_r": 0.7, "precision_at_1": 0.8}, "old": {"map_at_r": 0.75},
              "forgetting": {"a": 0.1, "b": float("nan")}, "gate": {"accepted": True, "reasons": []}}
    row = model_row(legacy)
    assert (row["map_at_r_all"], row["map_at_r_old"], row["map_at_r_new"]) == (0.7, 0.75, None)
    assert row["forgetting_max"] == 0.1
    assert set(model_row({}).values()) == {None}


def test_index_columns_take_only_finite_numbers():
    row = index_row({"recall_at_10": 0.96, "latency_p50_ms": float("nan"), "build_seconds": "x"})
    assert [k for k, _ in INDEX_COLUMNS] == list(row)
    assert row == {"recall_at_10": 0.96, "latency_p50_ms": None, "latency_p99_ms": None, "build_seconds": None}


def test_open_alerts_are_those_after_the_last_production_change():
    alerts = [SimpleNamespace(id=i, created_at=T0 + timedelta(hours=i)) for i in range(4)]
    assert [a.id for a in open_alerts(alerts, T0 + timedelta(hours=1, minutes=30))] == [2, 3]
    assert len(open_alerts(alerts, None)) == 4
    naive = (T0 + timedelta(hours=2, minutes=30)).replace(tzinfo=None)  # SQLite hands back naive UTC
    assert [a.id for a in open_alerts(alerts, naive)] == [3]


def _check(report_id: int, at: datetime, batch: int, drifted: bool, p: dict, combined: float | None = None):
    summary = {"detectors": {k: {"name": k, "p_value": v} for k, v in p.items()}, "batch_seq": batch,
               "decision": {"drifted": drifted, "combined_p_value": combined if combined is not None else min(p.values())}}
    return SimpleNamespace(id=report_id, created_at=at, batch_seq=batch, drifted=drifted, summary=summary)


def test_drift_series_orders_checks_and_keeps_gaps():
    reports = [
        _check(2, T0 + timedelta(days=1), 2, True, {"mmd": 0.001, "classifier": 0.01}),
        _check(1, T0, 1, False, {"mmd": 0.4}),
    ]
    labels, series, marked = drift_series(reports)
    assert labels == ["b1", "b2"]
    assert series == {"mmd": [0.4, 0.001], "combined": [0.4, 0.001], "classifier": [None, 0.01]}
    assert marked == [False, True]


def test_drift_series_reads_the_summary_monitoring_check_stores():
    labels, series, marked = drift_series([_check(1, T0, 3, True, {"mmd": 0.2, "novelty": 1e-5}, combined=6e-5)])
    assert labels == ["b3"]
    assert series == {"mmd": [0.2], "novelty": [1e-5], "combined": [6e-5]}
    assert marked == [True]
