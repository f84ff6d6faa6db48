"""Drift checks as the dashboard shows them, read through :class:`monitoring.summary.DriftSummary`.

Two charts over the checked batches: how *significant* each detector was (−log10 of its family-wise
adjusted p-value, with the α line) and how *large* its effect was (effect ÷ the threshold it must
exceed to act, with the line at 1). A check acts only when both lines are crossed; "significant,
small" is the first without the second. Pure functions over registry ``DriftReport`` entities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitoring.decision import DEFAULT_FLOORS
from monitoring.summary import DriftSummary
from steward.api.charts import colour, line_chart_svg
from steward.api.model_view import number

# Detector name -> (what it is called on the page, what its effect measures, in words with the unit).
DETECTORS: dict[str, tuple[str, str]] = {
    "mmd": ("MMD", "distribution distance (bias-corrected MMD², RBF kernel)"),
    "classifier": ("classifier", "how well a classifier tells the batches apart (held-out AUC − 0.5)"),
    "ks": ("KS", "largest KS distance over PCA components, beyond its no-drift level"),
    "novelty": ("novelty", "estimated share of rows unlike the reference"),
    "neighbourhood": ("neighbourhood", "estimated share of rows whose nearest items are all new (an emerging cluster)"),
    "label_shift": ("label shift", "largest change of one class's share of the batch"),
    "prototype_displacement": ("class centres", "mean squared class-centre shift beyond sampling noise"),
}
STATUS_CLASS = {"drift": "acting", "significant, small": "small", "no drift": "quiet"}
MAX_MINUS_LOG10 = 12.0  # the significance chart's ceiling (a tooltip says when a point is above it)


def detector_label(name: str) -> str:
    return DETECTORS.get(name, (name.replace("_", " "), ""))[0]


def detector_measures(name: str) -> str:
    return DETECTORS.get(name, ("", ""))[1]


@dataclass(frozen=True)
class DetectorRow:
    name: str
    label: str
    measures: str
    p_value: float | None
    adjusted_p_value: float | None
    effect: float | None
    threshold: float | None  # the effect it must exceed to act
    threshold_source: str  # "floor (young collection)" or "this collection's baseline over N checks"
    verdict: str  # "acts", "significant, small", "not significant"
    reason: str


@dataclass(frozen=True)
class CheckRow:
    report_id: int
    at: datetime
    batch_seq: int | None
    embedding: str  # "model v3" or "raw"
    model_version: int | None
    status: str  # DriftSummary.decision.status
    acting: tuple[str, ...]
    flagged: tuple[str, ...]
    min_adjusted_p: float | None
    n_current: int
    novel: int  # items the novelty detector named
    has_report: bool

    @property
    def css(self) -> str:
        return STATUS_CLASS.get(self.status, "")


@dataclass(frozen=True)
class DriftView:
    checks: tuple[CheckRow, ...]  # newest first
    detectors: tuple[DetectorRow, ...]  # of the newest check
    novel_items: tuple[dict[str, Any], ...]  # of the newest check, most novel first
    legend: tuple[tuple[str, str, str, str], ...]  # (name, label, colour, measures)
    significance_svg: str
    effect_svg: str
    alpha: float
    effect_scale: str | None = None  # the newest check's effect definitions (monitoring.decision.EFFECT_SCALE)


def _summary(report: Any) -> DriftSummary:
    return DriftSummary.from_dict({**(report.summary or {}), "collection": report.collection or ""})


def _adjusted(s: DriftSummary, name: str) -> float | None:
    v = s.decision.verdicts.get(name)
    if v is not None and number(v.adjusted_p_value) is not None:
        return v.adjusted_p_value
    if name in s.decision.adjusted_p_values:
        return number(s.decision.adjusted_p_values[name])
    return number(s.detectors[name].p_value) if name in s.detectors else None  # stored before Holm


def _effect_and_threshold(s: DriftSummary, name: str) -> tuple[float | None, float | None, str]:
    v = s.decision.verdicts.get(name)
    if v is not None and v.threshold.value > 0:
        t = v.threshold
        source = ("floor (young collection)" if t.source == "floor"
                  else f"baseline of {t.n_past} past checks")
        return number(v.effect), t.value, source
    effect = number(s.effects.get(name, s.detectors[name].effect if name in s.detectors else None))
    floor = DEFAULT_FLOORS.get(name)
    return effect, floor, "default floor" if floor else ""


def detector_rows(s: DriftSummary) -> list[DetectorRow]:
    rows = []
    for name, det in s.detectors.items():
        effect, threshold, source = _effect_and_threshold(s, name)
        verdict = s.decision.verdicts.get(name)
        adjusted = _adjusted(s, name)
        if name in s.decision.acting:
            word = "acts"
        elif name in s.decision.flagged:
            word = "significant, small"
        else:
            word = "not significant"
        rows.append(DetectorRow(name, detector_label(name), det.effect_description or detector_measures(name),
                                number(det.p_value), adjusted, effect, threshold, source, word,
                                verdict.reason if verdict else ""))
    return rows


def _status(report: Any, s: DriftSummary) -> str:
    # The registry's drifted flag wins: summaries stored before decisions existed lack one.
    return "drift" if report.drifted and not s.decision.drifted else s.decision.status


def check_row(report: Any) -> CheckRow:
    s = _summary(report)
    adjusted = [p for p in (_adjusted(s, n) for n in s.detectors) if p is not None]
    return CheckRow(report.id, report.created_at, report.batch_seq,
                    s.embedding or (f"model v{report.model_version}" if report.model_version else "raw"),
                    report.model_version, _status(report, s),
                    s.decision.acting, s.decision.flagged, min(adjusted) if adjusted else None, s.n_current,
                    len(s.novel_items), bool(report.report_artifact))


def chart_checks(reports: Sequence[Any]) -> list[Any]:
    """One check per batch (the latest), oldest batch first: the charts' x axis never repeats a batch."""
    latest: dict[Any, Any] = {}
    for r in sorted(reports, key=lambda r: (r.created_at, r.id)):
        latest[r.batch_seq if r.batch_seq is not None else f"#{r.id}"] = r
    return sorted(latest.values(), key=lambda r: (r.batch_seq is None, r.batch_seq or 0, r.id))


def _minus_log10(p: float | None) -> float | None:
    return None if p is None else -math.log10(max(p, 1e-300))


def drift_series(reports: Sequence[Any]) -> dict[str, Any]:
    """The charts' data: x labels, −log10 adjusted p and effect ÷ threshold per detector, each check's
    status, and where the model embedding the checks changed."""
    checks = chart_checks(reports)
    summaries = [_summary(r) for r in checks]
    names: list[str] = []
    for s in summaries:
        names += [n for n in s.detectors if n not in names]
    significance = {n: [_minus_log10(_adjusted(s, n)) if n in s.detectors else None for s in summaries]
                    for n in names}
    size: dict[str, list[float | None]] = {}
    for n in names:
        size[n] = []
        for s in summaries:
            effect, threshold, _ = _effect_and_threshold(s, n) if n in s.detectors else (None, None, "")
            size[n].append(None if effect is None or not threshold else effect / threshold)
    marks, previous = [], object()
    for i, r in enumerate(checks):
        if r.model_version != previous and i > 0:
            marks.append((i, f"v{r.model_version}" if r.model_version else "raw"))
        previous = r.model_version
    return {
        "labels": [f"b{r.batch_seq}" if r.batch_seq is not None else f"#{r.id}" for r in checks],
        "names": names, "significance": significance, "size": size, "vmarks": marks,
        "status": [_status(r, s) for r, s in zip(checks, summaries, strict=True)],
    }


def drift_view(reports: Sequence[Any], *, alpha: float, limit: int = 50) -> DriftView:
    newest_first = sorted(reports, key=lambda r: (r.created_at, r.id), reverse=True)
    data = drift_series(reports)
    colours = {n: colour(i) for i, n in enumerate(data["names"])}
    report_alpha = next((float(r.alpha) for r in newest_first if number(r.alpha) is not None), alpha)
    alpha_line = -math.log10(report_alpha)
    top_sig = max([v for vs in data["significance"].values() for v in vs if v is not None] + [0.0])
    top_size = max([v for vs in data["size"].values() for v in vs if v is not None] + [0.0])
    common: dict[str, Any] = {"marked": data["status"], "vmarks": data["vmarks"], "colours": colours,
                              "log_y": False, "y_min": 0.0, "width": 480, "height": 240,
                              "value_format": ".2f"}
    significance = line_chart_svg(
        data["significance"], data["labels"], title="Significance: −log10 adjusted p",
        y_max=max(2 * alpha_line, min(top_sig * 1.1, MAX_MINUS_LOG10)), y_label="−log10 p",
        threshold=alpha_line, threshold_label=f"α {report_alpha:g}", **common)
    size = line_chart_svg(
        data["size"], data["labels"], title="Size: effect ÷ its acting threshold",
        y_max=max(2.0, min(top_size * 1.1, 10.0)), y_label="effect / threshold", threshold=1.0,
        threshold_label="acts > 1", **common)
    latest = _summary(newest_first[0]) if newest_first else None
    return DriftView(
        checks=tuple(check_row(r) for r in newest_first[:limit]),
        detectors=tuple(detector_rows(latest)) if latest else (),
        novel_items=latest.novel_items[:20] if latest else (),
        legend=tuple((n, detector_label(n), colours[n], detector_measures(n)) for n in data["names"]),
        significance_svg=significance, effect_svg=size, alpha=report_alpha,
        effect_scale=None if latest is None or latest.effect_scale is None else str(latest.effect_scale),
    )
