from __future__ import annotations

from dataclasses import replace

import pytest

from core.settings import AlertSettings
from monitoring import alerts
from monitoring.alerts import WebhookPolicy, deliver_pending_alerts, post_webhook, raise_drift_alert
from tests.factories import drift_summary, feature_table
from tests.monitoring._http import Receiver, closed_port_url

FAST = WebhookPolicy(attempts=4, backoff_seconds=0.01, timeout_seconds=2.0)



@pytest.fixture
def ws(workspace, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    workspace.store.ingest_table(feature_table(20, seed=1), "c")
    return workspace


def with_webhook(ws, url, dedup=3600):
    return replace(ws, settings=replace(ws.settings, webhook_url=url, alert=AlertSettings(dedup_seconds=dedup)))


def test_fails_twice_then_succeeds_delivers_exactly_one(ws):
    with Receiver(fail_first=2) as rx:
        w = with_webhook(ws, rx.url)
        notice = raise_drift_alert(w, drift_summary(), policy=FAST)
        alert = ws.registry.monitoring.get_alert(notice.alert_id)
        assert notice.created and rx.statuses == [500, 500, 200]
        assert len(rx.delivered) == 1
        body = rx.delivered[0]
        assert "Drift detected in collection 'c'" in body["text"] and "mmd" in body["text"]
        assert body["alert_id"] == alert.id
        assert alert.delivered_at is not None and alert.attempts == 3
        # nothing left pending, and a later run sends nothing again
        assert deliver_pending_alerts(w, FAST) == 0
        assert len(rx.bodies) == 3


def test_down_webhook_keeps_alert_pending_and_a_later_run_delivers_it(ws):
    w = with_webhook(ws, closed_port_url())
    alert = ws.registry.monitoring.get_alert(raise_drift_alert(w, drift_summary(), policy=FAST).alert_id)
    assert alert.delivered_at is None and alert.attempts == FAST.attempts
    assert alert.last_error and "Connect" in alert.last_error
    [pending] = ws.registry.monitoring.list_alerts("c", undelivered_only=True)
    assert pending.id == alert.id
    with Receiver() as rx:
        assert deliver_pending_alerts(with_webhook(ws, rx.url), FAST) == 1
        assert [b["alert_id"] for b in rx.delivered] == [alert.id]
    assert ws.registry.monitoring.list_alerts("c", undelivered_only=True) == []


def test_dedup_window_suppresses_repeat_alerts(ws):
    with Receiver() as rx:
        w = with_webhook(ws, rx.url, dedup=3600)
        first = raise_drift_alert(w, drift_summary(), policy=FAST)
        second = raise_drift_alert(w, drift_summary(), policy=FAST)
        assert first.created and not second.created and second.alert_id == first.alert_id
        assert "repeats open alert" in second.describe()
        # another model version is another drift
        other = raise_drift_alert(w, drift_summary(2), policy=FAST)
        assert other.created and other.alert_id != first.alert_id
        assert len(rx.delivered) == 2
        # no window: every drift alerts
        w0 = with_webhook(ws, rx.url, dedup=0)
        assert raise_drift_alert(w0, drift_summary(), policy=FAST).created
    assert len(ws.registry.monitoring.list_alerts("c")) == 3


def test_no_webhook_configured_stores_alert_undelivered(ws):
    notice = raise_drift_alert(with_webhook(ws, None), drift_summary())
    alert = ws.registry.monitoring.get_alert(notice.alert_id)
    assert alert.delivered_at is None and alert.attempts == 0
    assert notice.event == "not sent (no Prefect API configured)"


def test_client_error_is_not_retried_now(monkeypatch):
    import httpx

    calls = []

    def fake_post(url, json, timeout):
        calls.append(url)
        return httpx.Response(404, text="no such hook")

    monkeypatch.setattr(httpx, "post", fake_post)
    err = post_webhook("http://127.0.0.1:1/x", {"text": "t"}, FAST, sleep=lambda s: None)
    assert err.startswith("HTTP 404") and len(calls) == 1


def test_backoff_is_exponential():
    waits = []
    err = post_webhook(closed_port_url(), {"text": "t"}, WebhookPolicy(attempts=4, backoff_seconds=1.0), sleep=waits.append)
    assert err is not None and waits == [1.0, 2.0, 4.0]


def test_prefect_event_is_skipped_without_a_server(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    assert alerts.emit_event(alerts.DRIFT_EVENT, "c", {"x": 1}).startswith("not sent")


def test_prefect_event_names_collection_resource(monkeypatch):
    import prefect.events

    seen = {}

    def fake_emit(event, resource, payload):
        seen.update(event=event, resource=resource, payload=payload)
        return object()

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(prefect.events, "emit_event", fake_emit)
    assert alerts.emit_event(alerts.DRIFT_EVENT, "shop", {"collection": "shop"}) == "emitted"
    assert seen["event"] == "steward.drift.detected"
    assert seen["resource"]["prefect.resource.id"] == "steward.collection.shop"
    assert seen["payload"] == {"collection": "shop"}


def test_prefect_event_failure_does_not_raise(monkeypatch):
    import prefect.events

    def broken(**kwargs):
        raise RuntimeError("bus down")

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(prefect.events, "emit_event", broken)
    assert alerts.emit_event(alerts.DRIFT_EVENT, "shop", {}).startswith("not sent (RuntimeError")


def test_an_unresolved_drift_re_emits_its_trigger_on_every_check(ws, monkeypatch):
    import prefect.events

    emitted = []
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(prefect.events, "emit_event", lambda event, resource, payload: emitted.append(payload) or object())
    first = raise_drift_alert(with_webhook(ws, None), drift_summary(), policy=FAST)
    again = raise_drift_alert(with_webhook(ws, None), drift_summary(), policy=FAST)
    assert (first.event, again.event) == ("emitted", "re-emitted")
    assert len(emitted) == 2 and emitted[1]["repeat"] is True  # the retrain trigger fires again
    assert len(ws.registry.monitoring.list_alerts("c")) == 1  # but the alert is not duplicated
