"""A tiny server-side SVG line chart: the dashboard needs one chart and no build step or CDN.

Pure functions from numbers to an SVG string; the template inlines the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

# Colour-blind-safe palette (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def line_chart_svg(
    series: Mapping[str, Sequence[float | None]],
    x_labels: Sequence[str],
    *,
    title: str = "",
    log_y: bool = True,
    y_min: float = 1e-4,
    y_max: float = 1.0,
    threshold: float | None = None,
    threshold_label: str = "alpha",
    marked: Sequence[bool] | None = None,
    width: int = 640,
    height: int = 240,
) -> str:
    """Lines over shared x positions; ``None`` values leave gaps.

    ``marked[i]`` draws a red band behind x position ``i`` (used for checks that found drift).
    With ``log_y`` values are clipped to ``[y_min, y_max]`` so a p-value of 0 still plots.
    """
    n = len(x_labels)
    left, right, top, bottom = 48, 130, 24 if title else 10, 34
    pw, ph = width - left - right, height - top - bottom

    def fy(v: float) -> float:
        v = min(max(v, y_min), y_max)
        if log_y:
            frac = (math.log10(v) - math.log10(y_min)) / (math.log10(y_max) - math.log10(y_min))
        else:
            frac = (v - y_min) / ((y_max - y_min) or 1.0)
        return top + ph * (1.0 - frac)

    def fx(i: int) -> float:
        return left + (pw * (i / (n - 1)) if n > 1 else pw / 2)

    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" aria-label="{escape(title or "chart")}">'
        )
    ]
    if title:
        out.append(f'<text x="{left}" y="15" class="chart-title">{escape(title)}</text>')
    if n == 0:
        out.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no data yet</text></svg>'
        )
        return "".join(out)

    band = pw / max(n - 1, 1) / 2 if n > 1 else pw / 4
    for i, flag in enumerate(marked or ()):
        if flag:
            x0 = max(left, fx(i) - band / 2)
            x1 = min(left + pw, fx(i) + band / 2)
            out.append(
                f'<rect class="drift-band" x="{_fmt(x0)}" y="{top}" width="{_fmt(x1 - x0)}" height="{ph}" '
                'fill="#D55E00" fill-opacity="0.12"><title>drift detected</title></rect>'
            )
    out.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999" stroke-width="0.5"/>'
    )
    ticks = (
        [10.0**e for e in range(math.ceil(math.log10(y_min)), math.floor(math.log10(y_max)) + 1)]
        if log_y
        else [y_min + (y_max - y_min) * f for f in (0, 0.25, 0.5, 0.75, 1.0)]
    )
    for t in ticks:
        y = fy(t)
        label = f"{t:g}" if not log_y else (f"1e{round(math.log10(t))}" if t < 0.01 else f"{t:g}")
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{_fmt(y + 3)}" text-anchor="end" class="tick">{label}</text>')
    step = max(1, math.ceil(n / 12))
    for i in range(0, n, step):
        out.append(
            f'<text x="{_fmt(fx(i))}" y="{top + ph + 14}" text-anchor="middle" class="tick">'
            f"{escape(str(x_labels[i]))}</text>"
        )
    if threshold is not None and y_min <= threshold <= y_max:
        y = fy(threshold)
        out.append(
            f'<line class="threshold" x1="{left}" x2="{left + pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
            'stroke="#D55E00" stroke-dasharray="4 3"/>'
            f'<text x="{left + pw + 4}" y="{_fmt(y + 3)}" class="tick">{escape(threshold_label)}</text>'
        )
    for s, (name, values) in enumerate(series.items()):
        colour = PALETTE[s % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for i, v in enumerate(values[:n]):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                segments.append([])
                continue
            segments[-1].append(f"{_fmt(fx(i))},{_fmt(fy(v))}")
            out.append(
                f'<circle cx="{_fmt(fx(i))}" cy="{_fmt(fy(v))}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} @ {escape(str(x_labels[i]))}: {v:.3g}</title></circle>"
            )
        for seg in segments:
            if len(seg) > 1:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(seg)}"/>'
                )
        ly = top + 12 + 14 * s
        out.append(
            f'<line x1="{left + pw + 8}" x2="{left + pw + 22}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + pw + 26}" y="{ly}" class="legend">{escape(name[:16])}</text>'
        )
    out.append("</svg>")
    return "".join(out)
