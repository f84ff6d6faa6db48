"""The Jinja templates of the dashboard pages and the filters they format numbers and times with.

Autoescaping is on for every ``.html`` template: labels, reasons and actors come from users. Only
the SVG charts are inserted as markup, and :mod:`steward.api.charts` escapes every text it draws.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from steward.api.drift_view import detector_label

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive UTC timestamps, PostgreSQL aware ones.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def when(ts: datetime | str | None) -> str:
    """``2026-11-27 06:46`` (UTC; the page footer says so)."""
    if ts is None or ts == "":
        return ""
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError:
            return ts
    return f"{_utc(ts):%Y-%m-%d %H:%M}"


def iso(ts: datetime | None) -> str:
    return "" if ts is None else _utc(ts).isoformat()


def num(v: Any, fmt: str = ".3f") -> str:
    """A number in ``fmt``; blank for missing or non-finite values (a table cell, never "nan")."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return ""
    return format(float(v), fmt)


def pval(v: Any) -> str:
    """A p-value: three significant digits, scientific below 0.001."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return ""
    return f"{v:.2e}" if 0 < v < 1e-3 else f"{v:.3g}"


def sign(v: Any) -> str:
    """A CSS class for a change: "up", "down" or ""."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or abs(v) < 1e-12:
        return ""
    return "up" if v > 0 else "down"


TEMPLATES.env.filters.update(when=when, iso=iso, num=num, pval=pval, sign=sign, label=detector_label)
