"""Which alerts are still open: one definition for ``steward status``, the API and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def _naive(ts: datetime) -> datetime:
    # SQLite hands back naive UTC timestamps, PostgreSQL aware ones; compare them alike.
    return ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)


def open_alerts(alerts: Sequence[Any], since: datetime | None) -> list[Any]:
    """Alerts raised after production last changed: nothing has answered them yet.

    A promotion or rollback is the answer to an alert (a retrained model, or a deliberate
    return to a known-good one), so older alerts count as handled. Delivery is a separate
    matter: an undelivered alert is retried whether or not it is still open.
    """
    if since is None:
        return list(alerts)
    return [a for a in alerts if _naive(a.created_at) > _naive(since)]
