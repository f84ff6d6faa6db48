"""Pure helpers behind /status and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from steward.api.views import (
    MODEL_METRIC_PATTERN,
    drift_series,
    flatten_metrics,
    open_alerts,
    pick_metric_columns,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_metric_columns_follow_the_names_models_use():
    metrics = [
        {"map_at_r": {"old": 0.8, "new": 0.7}, "forgetting": 0.02, "loss": 0.3, "note": "x"},
        {"map_at_r": {"old": 0.81, "new": 0.75}, "forgetting": float("nan"), "precision_at_1": 0.9},
    ]
    assert flatten_metrics(metrics[0])["map_at_r.old"] == 0.8
    cols = pick_metric_columns(metrics, MODEL_METRIC_PATTERN)
    assert cols == ["forgetting", "map_at_r.new", "map_at_r.old", "precision_at_1"]


def test_metric_columns_put_map_at_r_overall_old_new_first_and_skip_per_class():
    metrics = {
        "per_class": {"3": {"map_at_r": 0.5}},
        "new": {"map_at_r": 0.6, "precision_at_1": 0.7},
        "overall": {"map_at_r": 0.8, "nmi": 0.4},
        "old": {"map_at_r": 0.9},
        "forgetting": {"3": 0.02, "4": 0.0, "5": -0.01},  # per class, as embedding.retrain writes it
    }
    cols = pick_metric_columns([metrics], MODEL_METRIC_PATTERN)
    assert cols == [
        "overall.map_at_r",
        "old.map_at_r",
        "new.map_at_r",
        "forgetting.max",
        "forgetting.mean",
        "new.precision_at_1",
    ]
    flat = flatten_metrics(metrics)
    assert flat["forgetting.max"] == 0.02
    assert abs(flat["forgetting.mean"] - 0.01 / 3) < 1e-12
    assert not any(k.startswith("forgetting.3") for k in flat)


def test_open_alerts_are_those_after_the_last_production_change():
    alerts = [SimpleNamespace(id=i, created_at=T0 + timedelta(hours=i)) for i in range(4)]
    assert [a.id for a in open_alerts(alerts, T0 + timedelta(hours=1, minutes=30))] == [2, 3]
    assert len(open_alerts(alerts, None)) == 4
    naive = (T0 + timedelta(hours=2, minutes=30)).replace(tzinfo=None)  # SQLite hands back naive UTC
    assert [a.id for a in open_alerts(alerts, naive)] == [3]


def test_drift_series_orders_checks_and_keeps_gaps():
    reports = [
        SimpleNamespace(
            id=2,
            created_at=T0 + timedelta(days=1),
            batch_seq=2,
            drifted=True,
            summary={"mmd": {"p_value": 0.001}, "classifier": {"p_value": 0.01}},
        ),
        SimpleNamespace(
            id=1,
            created_at=T0,
            batch_seq=1,
            drifted=False,
            summary={"mmd": {"p_value": 0.4}, "meta": "not a detector"},
        ),
    ]
    labels, series, marked = drift_series(reports)
    assert labels == ["b1", "b2"]
    assert series == {"mmd": [0.4, 0.001], "classifier": [None, 0.01]}
    assert marked == [False, True]


def test_drift_series_reads_the_summary_monitoring_check_stores():
    report = SimpleNamespace(
        id=1, created_at=T0, batch_seq=3, drifted=True,
        summary={"detectors": {"mmd": {"p_value": 0.2}, "novelty": {"p_value": 1e-5}},
                 "decision": {"combined_p_value": 6e-5, "flagged": ["novelty"]}, "batch_seq": 3},
    )
    labels, series, marked = drift_series([report])
    assert labels == ["b3"]
    assert series == {"mmd": [0.2], "novelty": [1e-5], "combined": [6e-5]}
    assert marked == [True]
