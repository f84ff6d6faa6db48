"""A maintenance run's summary as Prefect artifacts (markdown and a table)."""

from __future__ import annotations

import re

from maintenance.summary import MaintenanceSummary


def artifact_key(collection: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only.
    return "maintenance-" + (re.sub(r"[^a-z0-9-]+", "-", collection.lower()).strip("-") or "collection")


def summary_table(summary: MaintenanceSummary) -> list[dict[str, str]]:
    return [{"item": item, "value": value} for item, value in summary.rows()]


def summary_markdown(summary: MaintenanceSummary) -> str:
    lines = [f"# Maintenance of `{summary.collection}`", "", f"Outcome: **{summary.outcome}**", "",
             "| | |", "|---|---|"]
    lines += [f"| {item} | {value} |" for item, value in summary.rows()]
    return "\n".join(lines) + "\n"
