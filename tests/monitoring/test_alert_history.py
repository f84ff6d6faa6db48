"""The alert history survives rollbacks: a production change answers (closes) alerts, it never hides them."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from core.settings import AlertSettings
from monitoring.alerts import alert_history, answered_by, raise_drift_alert
from monitoring.status import collection_status
from tests.factories import drift_summary, feature_table


@pytest.fixture
def ws(workspace, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    workspace.store.ingest_table(feature_table(20, seed=1), "c")
    for _ in range(2):
        v = workspace.registry.models.register_model("c", config={}, metrics={}, artifacts={}).version
    assert v == 2
    return replace(workspace, settings=replace(workspace.settings, alert=AlertSettings(dedup_seconds=0)))


def test_alerts_stay_in_the_history_with_the_change_that_answered_them(ws) -> None:
    ws.production.promote("c", 1, reason="first")
    first = raise_drift_alert(ws, drift_summary(1), notify=False).alert_id
    time.sleep(0.01)
    ws.production.promote("c", 2, reason="retrained")
    second = raise_drift_alert(ws, drift_summary(2), notify=False).alert_id
    assert [a.id for a in collection_status(ws, "c").open_alerts] == [second]

    time.sleep(0.01)
    ws.production.rollback("c", reason="v2 misranks")
    assert collection_status(ws, "c").open_alerts == ()  # the rollback answered it ...
    history = alert_history(ws, "c")
    assert [r.alert.id for r in history] == [second, first]  # ... and both are still there, newest first
    assert history[0].answered_by.kind == "rollback" and history[1].answered_by.reason == "retrained"
    assert not any(r.open for r in history)
    assert all(r.undelivered is None for r in history)  # no webhook configured: nothing to deliver to
    assert collection_status(ws, "c").undelivered_alerts is None

    third = raise_drift_alert(ws, drift_summary(1), notify=False).alert_id
    assert [r.alert.id for r in alert_history(ws, "c", open_only=True)] == [third]
    assert [r.alert.id for r in alert_history(ws, "c", limit=1)] == [third]


def test_answered_by_is_the_first_change_after_the_alert() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace as NS

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    alerts = [NS(id=1, created_at=t0), NS(id=2, created_at=t0 + timedelta(hours=2))]
    changes = [NS(id=7, at=t0 + timedelta(hours=3)), NS(id=5, at=t0 + timedelta(hours=1)),
               NS(id=3, at=(t0 - timedelta(hours=1)).replace(tzinfo=None))]  # naive: SQLite's UTC
    found = answered_by(alerts, changes)
    assert found[1].id == 5 and found[2].id == 7
    assert answered_by([NS(id=9, created_at=t0 + timedelta(hours=4))], changes) == {9: None}
