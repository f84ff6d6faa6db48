"""What each flow leaves in Prefect: markdown artifacts a person reads in the UI."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from maintenance.summary import MaintenanceSummary
from monitoring.summary import DriftSummary


def artifact_key(collection: str, kind: str = "maintenance") -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only.
    return f"{kind}-" + (re.sub(r"[^a-z0-9-]+", "-", collection.lower()).strip("-") or "collection")


def summary_table(summary: MaintenanceSummary) -> list[dict[str, str]]:
    return [{"item": item, "value": value} for item, value in summary.rows()]


def _table(rows: Iterable[tuple[str, Any]]) -> list[str]:
    out = ["| | |", "|---|---|"]
    out += [f"| {item} | {str(value).replace('|', '/')} |" for item, value in rows]
    return out


def summary_markdown(summary: MaintenanceSummary, title: str = "Maintenance") -> str:
    lines = [f"# {title} of `{summary.collection}`", "", f"Outcome: **{summary.outcome}**", ""]
    return "\n".join(lines + _table(summary.rows())) + "\n"


def drift_markdown(summary: DriftSummary) -> str:
    verdict = "**drift**" if summary.drifted else "no drift"
    lines = [f"# Drift check of `{summary.collection}`, batch {summary.batch_seq}", "",
             (f"{verdict} at family-wise alpha {summary.decision.alpha} (batch {summary.batch_seq} vs "
             f"{list(summary.reference_batches)}, {summary.embedding})"), "",
             "| detector | p-value | adjusted | flagged | effect |", "|---|---|---|---|---|"]
    adjusted = summary.decision.adjusted_p_values
    for name, det in summary.detectors.items():
        lines.append(f"| {name} | {det.p_value:.3g} | {adjusted.get(name, float('nan')):.3g} | "
                     f"{'yes' if name in summary.decision.flagged else ''} | {det.effect_description} |")
    if summary.notice:
        lines += ["", f"Alert: {summary.notice}"]
    return "\n".join(lines) + "\n"


def record_markdown(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    """A small record (an ingest, an index, a production change) as a two-column table."""
    return "\n".join([f"# {title}", "", *_table(rows)]) + "\n"


def publish(key: str, markdown: str, description: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=key, markdown=markdown, description=description)
