"""Drift alerts: a row in the registry first, then a Prefect event and a webhook POST.

The registry row is the source of truth. Delivery is best effort with retries and exponential
backoff; an alert the webhook did not take stays undelivered in the database and
:func:`deliver_pending_alerts` retries it on the next run, so a webhook that is down never loses an
alert. A deduplication window (``settings.alert.dedup_seconds``) keyed per collection and model
stops one ongoing drift from raising an alert on every batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from monitoring.summary import DriftSummary
    from storage.workspace import Workspace

log = logging.getLogger(__name__)

DRIFT_EVENT = "steward.drift.detected"
DATA_FAULT_EVENT = "steward.data.fault"
EVENTS = {"drift": DRIFT_EVENT, "data_quality": DATA_FAULT_EVENT}  # alert kind -> Prefect event
RESOURCE_PREFIX = "steward.collection."


@dataclass(frozen=True)
class Notice:
    """What raising an alert did, in a form the run summary and the CLI can show."""

    alert_id: int | None  # the new alert, or the open one this repeats (None: nothing stored)
    created: bool  # False: the dedup window folded it into ``alert_id``
    event: str  # "emitted", "re-emitted", or why no event was sent

    def describe(self) -> str:
        stored = (f"alert {self.alert_id} raised" if self.created
                  else f"repeats open alert {self.alert_id} (inside the dedup window)")
        return f"{stored}; Prefect event {self.event}"


@dataclass(frozen=True)
class WebhookPolicy:
    attempts: int = 4  # per alert per run
    backoff_seconds: float = 0.5  # wait before retry i is backoff_seconds · factor**i
    backoff_factor: float = 2.0
    timeout_seconds: float = 5.0


def drift_dedup_key(collection: str, model_version: int | None) -> str:
    return f"drift:{collection}:model={model_version if model_version is not None else 'raw'}"


def alert_text(summary: DriftSummary) -> str:
    from monitoring.summary import decision_lines

    decision = summary.decision
    lines = [
        (
            f"Drift detected in collection '{summary.collection}' (batch {summary.batch_seq}): "
            f"{len(decision.acting or decision.flagged)} detector(s) acting, family-wise α={decision.alpha}"
        ),
        *decision_lines(summary),
    ]
    for name in decision.acting or decision.flagged:
        det = summary.detectors.get(name)
        if det is None:
            lines.append(f"• {name}")
        else:
            lines.append(f"• {name}: p={det.p_value:.3g} — {det.effect_description}")
    return "\n".join(lines)


def emit_event(name: str, collection: str, payload: dict[str, Any]) -> str:
    """Emit a Prefect event for deployment triggers; returns what happened, in words.

    Only when a Prefect API is configured: without one, Prefect 3 would spin up an ephemeral
    server inside this process (slow, and pointless: no trigger could be listening).
    """
    if not prefect_api_configured():
        log.info("no Prefect API configured (PREFECT_API_URL); skipping event %s", name)
        return "not sent (no Prefect API configured)"
    try:
        from prefect.events import emit_event as prefect_emit

        event = prefect_emit(
            event=name,
            resource={"prefect.resource.id": f"{RESOURCE_PREFIX}{collection}", "prefect.resource.name": collection},
            payload=payload,
        )
    # the alert row is already stored; a broken event bus must not fail the check
    except Exception as e:  # noqa: BLE001
        log.warning("could not emit Prefect event %s for %s: %s", name, collection, e)
        return f"not sent ({type(e).__name__}: {e})"
    return "emitted" if event is not None else "not sent (Prefect returned no event)"


def prefect_api_configured() -> bool:
    """Whether a Prefect API is configured: ``PREFECT_API_URL``, or the active profile of
    ``$PREFECT_HOME/profiles.toml`` (default ``~/.prefect``) sets it.

    Read without importing Prefect (seconds): commands that need no server must not pay for it.
    """
    return prefect_api_url() is not None


def prefect_ui_url() -> str | None:
    """Where the Prefect UI of the configured API lives (``PREFECT_UI_URL``, else the API URL without
    its ``/api`` suffix, as a local Prefect server serves both); None when no API is configured."""
    api = prefect_api_url()
    if api is None:
        return None
    ui = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return ui.rstrip("/")


def prefect_api_url() -> str | None:
    """The configured Prefect API URL (see :func:`prefect_api_configured`), or None."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if os.environ.get("STEWARD_PREFECT_EVENTS", "").lower() in ("0", "false", "off"):
        return None
    import tomllib
    from pathlib import Path

    path = Path(os.environ.get("PREFECT_PROFILES_PATH")
                or Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect") / "profiles.toml")
    try:
        data = tomllib.loads(path.read_text()) if path.is_file() else {}
    except (OSError, tomllib.TOMLDecodeError) as e:  # a broken profile only means: no server known
        log.warning("could not read Prefect profiles %s: %s", path, e)
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    url = (data.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL")
    return str(url) if url else None


def post_webhook(
    url: str,
    body: dict[str, Any],
    policy: WebhookPolicy = WebhookPolicy(),
    *,
    on_attempt: Callable[[bool, str | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """POST ``body`` as JSON with retries; None on success, else the last error.

    Retries network errors, 5xx and 429; another 4xx is a configuration problem that repeating
    now won't fix (the alert still stays pending for the next run).
    """
    import httpx

    error: str | None = None
    for attempt in range(policy.attempts):
        retryable = True
        try:
            resp = httpx.post(url, json=body, timeout=policy.timeout_seconds)
            if 200 <= resp.status_code < 300:
                if on_attempt:
                    on_attempt(True, None)
                return None
            error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            retryable = resp.status_code >= 500 or resp.status_code == 429
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        if on_attempt:
            on_attempt(False, error)
        log.warning("webhook attempt %d/%d failed: %s", attempt + 1, policy.attempts, error)
        if not retryable or attempt == policy.attempts - 1:
            break
        sleep(policy.backoff_seconds * policy.backoff_factor**attempt)
    return error


def webhook_body(alert) -> dict[str, Any]:
    """Slack-compatible: Slack reads ``text``; other receivers get the structured fields too."""
    return {
        "text": alert.message,
        "event": EVENTS.get(alert.kind, alert.kind),
        "collection": alert.collection,
        "alert_id": alert.id,
        "created_at": alert.created_at.isoformat(),
        "payload": alert.payload,
    }


def deliver_pending_alerts(workspace: Workspace, policy: WebhookPolicy = WebhookPolicy(), collection: str | None = None) -> int:
    """Retry every undelivered alert (oldest first); returns how many were delivered now.

    Stops at the first alert the webhook still refuses after its retries: the endpoint is down,
    and trying the rest would only multiply the waiting.
    """
    url = workspace.settings.webhook_url
    if not url:
        return 0
    monitoring = workspace.registry.monitoring
    delivered = 0
    for alert in monitoring.list_alerts(collection, undelivered_only=True):

        def record(ok: bool, err: str | None, alert_id: int = alert.id) -> None:
            monitoring.record_alert_attempt(alert_id, delivered=ok, error=err)

        error = post_webhook(url, webhook_body(alert), policy, on_attempt=record)
        if error is not None:
            log.warning("alert %d stays pending (webhook down?): %s", alert.id, error)
            break
        delivered += 1
    return delivered


def raise_alert(workspace: Workspace, collection: str, *, kind: str, message: str, payload: dict[str, Any],
                dedup_key: str, event_payload: dict[str, Any], drift_report_id: int | None = None,
                notify: bool = True, policy: WebhookPolicy = WebhookPolicy()) -> Notice:
    """Store the alert (unless an open one with ``dedup_key`` is inside the window), emit the
    Prefect event and deliver pending alerts.

    A repeat inside the window stores nothing new but still emits the event ("re-emitted"): the
    state that triggers a retrain persists, so the trigger must too.
    """
    monitoring = workspace.registry.monitoring
    window = workspace.settings.alert.dedup_seconds
    alert = monitoring.add_alert(collection, kind=kind, message=message, payload=payload, dedup_key=dedup_key,
                                 drift_report_id=drift_report_id, dedup_window_seconds=window)
    if alert is None:
        open_alert = monitoring.recent_alert(collection, dedup_key, window)
        log.info("%s in %s: alert %s is inside the dedup window; not re-alerting", kind, collection,
                 open_alert.id if open_alert else "?")
        event = "not sent (notify off)"
        if notify:
            sent = emit_event(EVENTS.get(kind, kind), collection, {"collection": collection, "repeat": True,
                                                                   **event_payload})
            event = "re-emitted" if sent == "emitted" else sent
            deliver_pending_alerts(workspace, policy)  # earlier alerts the webhook missed
        return Notice(open_alert.id if open_alert else None, False, event)
    event = "not sent (notify off)"
    if notify:
        event = emit_event(EVENTS.get(kind, kind), collection,
                           {"collection": collection, "alert_id": alert.id, **event_payload})
        deliver_pending_alerts(workspace, policy)
    return Notice(alert.id, True, event)


def raise_drift_alert(workspace: Workspace, summary: DriftSummary, *, notify: bool = True,
                      policy: WebhookPolicy = WebhookPolicy()) -> Notice:
    payload = summary.to_dict()
    return raise_alert(workspace, summary.collection, kind="drift", message=alert_text(summary), payload=payload,
                       dedup_key=drift_dedup_key(summary.collection, summary.model_version),
                       event_payload=_event_summary(payload), drift_report_id=summary.report_id, notify=notify,
                       policy=policy)


def _event_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A compact payload (Prefect caps event size): the decision and each detector's p and effect."""
    return {
        "batch_seq": summary.get("batch_seq"),
        "model_version": summary.get("model_version"),
        "drift_report_id": summary.get("report_id"),
        "decision": summary.get("decision"),
        "detectors": {
            k: {"p_value": v.get("p_value"), "effect": v.get("effect"), "effect_description": v.get("effect_description")}
            for k, v in summary.get("detectors", {}).items()
        },
    }


@dataclass(frozen=True)
class AlertRecord:
    """One alert in a collection's history, with what answered it.

    Open alerts are those raised after production last changed (:func:`monitoring.open_alerts.open_alerts`);
    a closed one keeps its place in the history with the promotion or rollback that closed it, so a
    rollback closes alerts without losing them.
    """

    alert: Any  # storage.registry.entities.Alert
    open: bool
    answered_by: Any | None  # the first production change (AliasChange) after it; None while open
    undelivered: bool | None  # None when no webhook is configured (nothing to deliver to)


def answered_by(alerts: list[Any], changes: list[Any]) -> dict[int, Any | None]:
    """Alert id -> the first production change after it (None: none yet, the alert is open). Pure."""
    from monitoring.open_alerts import _naive

    ordered = sorted(changes, key=lambda c: (_naive(c.at), c.id))
    return {a.id: next((c for c in ordered if _naive(c.at) >= _naive(a.created_at)), None) for a in alerts}


def alert_history(workspace: Workspace, collection: str, *, open_only: bool = False,
                  limit: int | None = None) -> list[AlertRecord]:
    """Every alert of ``collection``, newest first (``limit`` of them), open or answered."""
    alerts = workspace.registry.monitoring.list_alerts(collection)
    answers = answered_by(alerts, workspace.production.history(collection))
    webhook = bool(workspace.settings.webhook_url)
    records = [AlertRecord(a, answers[a.id] is None, answers[a.id], (a.delivered_at is None) if webhook else None)
               for a in sorted(alerts, key=lambda a: a.id, reverse=True)]
    if open_only:
        records = [r for r in records if r.open]
    return records[:limit] if limit is not None else records
