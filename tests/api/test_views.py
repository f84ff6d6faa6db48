"""Pure helpers behind /status and the dashboard: they read the typed contracts, never guess keys."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from embedding.gate import GateCheck, GateDecision
from embedding.metrics import EvaluationReport
from embedding.report import ModelReport, TrainingSummary
from monitoring.decision import decide
from monitoring.detectors.base import DetectorResult
from monitoring.suite import EFFECT_SCALE
from steward.api.drift_view import drift_series, drift_view
from steward.api.model_view import compare, per_class
from steward.api.views import (
    INDEX_COLUMNS,
    MODEL_COLUMNS,
    alert_rows,
    index_row,
    model_row,
    open_alerts,
    training_rows,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(per_class_map: dict[str, float] | None = None, old_classes: tuple[str, ...] = (),
            overall: float = 0.8, gate: GateDecision | None = None) -> dict:
    per = per_class_map if per_class_map is not None else {"3": 0.5}
    evaluation = EvaluationReport.from_dict({
        "num_items": 30, "num_classes": 3,
        "overall": {"map_at_r": overall, "precision_at_1": 0.9, "nmi": 0.4},
        "old": {"map_at_r": 0.9}, "new": {"map_at_r": 0.6, "precision_at_1": 0.7},
        "per_class": {c: {"map_at_r": v, "precision_at_1": v + 0.1} for c, v in per.items()},
        "old_classes": list(old_classes),
    })
    return ModelReport(evaluation=evaluation, gate=gate or GateDecision(True, ("ok",)),
                       training=TrainingSummary(mode="incremental", epochs_run=4),
                       forgetting={"3": 0.02, "4": 0.0, "5": -0.01},
                       compatibility={"comparable": True, "new_vs_new_map_at_r": 0.7}).to_dict()


def test_model_columns_are_the_headline_numbers_of_the_model_report():
    row = model_row(_report())
    assert [k for k, _ in MODEL_COLUMNS] == list(row)
    assert (row["map_at_r_all"], row["map_at_r_old"], row["map_at_r_new"], row["p_at_1_all"]) == (0.8, 0.9, 0.6, 0.9)
    assert row["forgetting_max"] == 0.02
    assert abs(row["forgetting_mean"] - 0.01 / 3) < 1e-12
    assert all("_" not in heading for _, heading in MODEL_COLUMNS + INDEX_COLUMNS)  # readable, never raw keys


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


# ---- drift -----------------------------------------------------------------------------------------


def _check(report_id: int, at: datetime, batch: int, detectors: dict[str, tuple[float, float]],
           model_version: int | None = 1, novel: int = 0):
    """A stored drift report as monitoring.check writes it: detectors (p, effect) through the real decision."""
    results = {k: DetectorResult(k, 0.0, p, e, f"{k} effect", 100, 100) for k, (p, e) in detectors.items()}
    decision = decide(results, 0.05)
    summary = {"batch_seq": batch, "decision": decision.to_dict(), "drifted": decision.drifted,
               "detectors": {k: r.to_dict() for k, r in results.items()},
               "effects": {k: e for k, (_, e) in detectors.items()}, "effect_scale": EFFECT_SCALE,
               "novel_items": [{"rank": i + 1, "row": i, "p_value": 0.001, "score": 0.5, "item_id": f"n{i}"}
                               for i in range(novel)]}
    return SimpleNamespace(id=report_id, collection="c", created_at=at, batch_seq=batch, model_version=model_version,
                           drifted=decision.drifted, alpha=0.05, summary=summary, report_artifact=None)


def test_drift_series_has_one_point_per_batch_on_the_minus_log10_and_effect_scales():
    reports = [
        _check(1, T0, 1, {"mmd": (0.4, 0.001)}),
        _check(2, T0 + timedelta(hours=1), 2, {"mmd": (0.001, 0.03), "classifier": (0.01, 0.05)}),
        _check(3, T0 + timedelta(hours=2), 2, {"mmd": (0.001, 0.0015)}, model_version=2),  # re-check of batch 2
        _check(4, T0 + timedelta(hours=3), 3, {"mmd": (0.5, 0.0)}, model_version=2),
    ]
    data = drift_series(reports)
    assert data["labels"] == ["b1", "b2", "b3"]  # batch 2 appears once: its latest check
    assert data["names"] == ["mmd"]  # the classifier ran only in the superseded check of batch 2
    assert math.isclose(data["significance"]["mmd"][0], -math.log10(0.4))
    assert math.isclose(data["significance"]["mmd"][1], -math.log10(0.001))  # alone: adjusted = raw
    # effect / the floor it must exceed (young collection): mmd floor 0.003
    assert math.isclose(data["size"]["mmd"][1], 0.0015 / 0.003)
    assert data["status"] == ["no drift", "significant, small", "no drift"]
    assert data["vmarks"] == [(1, "v2")]  # the model embedding the checks changed before batch 2's latest check


def test_drift_view_lists_detectors_verdicts_novel_items_and_draws_both_charts():
    reports = [_check(1, T0, 1, {"mmd": (0.4, 0.001)}),
               _check(2, T0 + timedelta(hours=1), 2, {"mmd": (0.001, 0.03), "novelty": (0.2, 0.0)}, novel=3)]
    view = drift_view(reports, alpha=0.05)
    assert [c.status for c in view.checks] == ["drift", "no drift"]  # newest first
    rows = {r.name: r for r in view.detectors}
    assert rows["mmd"].verdict == "acts" and rows["mmd"].threshold == 0.003 and "floor" in rows["mmd"].threshold_source
    assert rows["novelty"].verdict == "not significant"
    assert [n["item_id"] for n in view.novel_items] == ["n0", "n1", "n2"] and view.checks[0].novel == 3
    assert [name for name, *_ in view.legend] == ["mmd", "novelty"]
    assert "α 0.05" in view.significance_svg and "acts &gt; 1" in view.effect_svg
    assert view.significance_svg.count('class="drift-band"') == 1


def test_drift_view_reads_reports_stored_before_decisions_had_verdicts():
    old = SimpleNamespace(id=1, collection="c", created_at=T0, batch_seq=4, model_version=None, drifted=True,
                          alpha=0.05, report_artifact="x",
                          summary={"detectors": {"mmd": {"name": "mmd", "p_value": 0.001}},
                                   "decision": {"drifted": True, "combined_p_value": 0.001}})
    view = drift_view([old], alpha=0.05)
    assert view.checks[0].status == "drift" and view.checks[0].embedding == "raw" and view.checks[0].has_report
    assert view.detectors[0].adjusted_p_value == 0.001


# ---- models ------------------------------------------------------------------------------------------


def test_per_class_rows_put_the_worst_class_first_and_mark_new_classes():
    a = ModelReport.from_dict(_report({"x": 0.8, "y": 0.6}))
    b = ModelReport.from_dict(_report({"x": 0.7, "y": 0.9, "z": 0.2}, old_classes=("x", "y")))
    rows = per_class([a, b])
    assert [r.label for r in rows] == ["z", "x", "y"]
    assert rows[0].map_at_r == (None, 0.2) and rows[0].new_in == (False, True) and rows[0].delta() is None
    assert math.isclose(rows[1].delta(), -0.1)


def _version(v: int, metrics: dict) -> SimpleNamespace:
    return SimpleNamespace(version=v, metrics=metrics, status="candidate", status_reason=None, parent_version=v - 1,
                           trained_on_batch=v, created_at=T0)


def test_compare_gives_deltas_in_the_metrics_direction_and_both_gate_decisions():
    rejected = GateDecision(False, ("old classes lost 0.05 MAP@R",),
                            (GateCheck("old", False, 0.05, 0.02, 0.08, 0.01, "old classes"),))
    x = compare(_version(1, _report(overall=0.7)), _version(2, _report(overall=0.8, gate=rejected)),
                {"recall_at_10": 0.9, "latency_p50_ms": 2.0}, {"recall_at_10": 0.95, "latency_p50_ms": 3.0})
    head = {d.metric.key: d for d in x.headline}
    assert math.isclose(head["map_at_r_all"].delta, 0.1) and head["map_at_r_all"].verdict == "better"
    index = {d.metric.key: d for d in x.index}
    assert index["latency_p50_ms"].verdict == "worse" and index["recall_at_10"].verdict == "better"
    assert x.gates[0].accepted is True and x.gates[1].accepted is False
    assert x.gates[1].reasons == ("old classes lost 0.05 MAP@R",) and x.gates[1].checks[0].name == "old"
    assert x.compatibility == (("MAP@R, new model against itself", 0.7, 0.7),)
    assert ("epochs run", 4, 4) in x.training


# ---- alerts and runs -------------------------------------------------------------------------------


def _alert_record(i: int, *, open_: bool, undelivered: bool | None):
    alert = SimpleNamespace(id=i, kind="drift", message=f"drift on batch {i}\ndetails", created_at=T0,
                            delivered_at=None if undelivered else T0, attempts=2, last_error="timeout",
                            drift_report_id=7)
    change = None if open_ else SimpleNamespace(kind="rollback", to_model=1, actor="ana (api)", at=T0)
    return SimpleNamespace(alert=alert, open=open_, answered_by=change, undelivered=undelivered)


def test_alert_rows_say_what_answered_them_and_mention_delivery_only_with_a_webhook():
    rows = alert_rows([_alert_record(2, open_=True, undelivered=None), _alert_record(1, open_=False, undelivered=None)])
    assert rows[0].open and rows[0].title == "drift on batch 2" and rows[0].delivery is None
    assert rows[1].answered == "rolled back to v1 by ana (api) at 2026-01-01 00:00"
    with_hook = alert_rows([_alert_record(3, open_=True, undelivered=True)])
    assert with_hook[0].delivery == "not delivered (2 attempts): timeout"


def test_training_rows_link_a_recorded_prefect_flow_run():
    runs = [SimpleNamespace(id=i, kind="incremental", status="finished", model_version=i, batches=[1, 2, 3],
                            started_at=T0, finished_at=T0 + timedelta(seconds=90),
                            details={"prefect_flow_run_id": "abc"} if i == 2 else {}) for i in (1, 2)]
    rows = training_rows(runs, "http://prefect:4200")
    assert [r.id for r in rows] == [2, 1] and rows[0].seconds == 90 and rows[0].batches == "1–3"
    assert rows[0].prefect_url == "http://prefect:4200/runs/flow-run/abc" and rows[1].prefect_url is None
    assert training_rows(runs, None)[0].prefect_url is None  # no Prefect API configured: no link
