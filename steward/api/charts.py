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


class _Frame:
    """The plot area and its scales: value -> pixel, for x positions and (log) y values."""

    def __init__(self, n: int, width: int, height: int, titled: bool, log_y: bool, y_min: float, y_max: float):
        self.n, self.log_y, self.y_min, self.y_max = n, log_y, y_min, y_max
        self.left, self.top = 48, 24 if titled else 10
        self.pw, self.ph = width - self.left - 130, height - self.top - 34

    def y(self, v: float) -> float:
        v = min(max(v, self.y_min), self.y_max)
        if self.log_y:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            frac = (math.log10(v) - lo) / (hi - lo)
        else:
            frac = (v - self.y_min) / ((self.y_max - self.y_min) or 1.0)
        return self.top + self.ph * (1.0 - frac)

    def x(self, i: int) -> float:
        return self.left + (self.pw * (i / (self.n - 1)) if self.n > 1 else self.pw / 2)

    def bands(self, marked: Sequence[bool]) -> list[str]:
        band = self.pw / max(self.n - 1, 1) / 2 if self.n > 1 else self.pw / 4
        out = []
        for i, flag in enumerate(marked):
            if flag:
                x0 = max(self.left, self.x(i) - band / 2)
                x1 = min(self.left + self.pw, self.x(i) + band / 2)
                out.append(f'<rect class="drift-band" x="{_fmt(x0)}" y="{self.top}" width="{_fmt(x1 - x0)}" '
                           f'height="{self.ph}" fill="#D55E00" fill-opacity="0.12"><title>drift detected</title></rect>')
        return out

    def axes(self, x_labels: Sequence[str]) -> list[str]:
        out = [(f'<rect x="{self.left}" y="{self.top}" width="{self.pw}" height="{self.ph}" fill="none" '
               'stroke="#999" stroke-width="0.5"/>')]
        lo, hi = self.y_min, self.y_max
        ticks = ([10.0**e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)] if self.log_y
                 else [lo + (hi - lo) * f for f in (0, 0.25, 0.5, 0.75, 1.0)])
        for t in ticks:
            y = self.y(t)
            label = f"{t:g}" if not self.log_y else (f"1e{round(math.log10(t))}" if t < 0.01 else f"{t:g}")
            out.append(f'<line x1="{self.left}" x2="{self.left + self.pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" stroke="#eee"/>')
            out.append(f'<text x="{self.left - 4}" y="{_fmt(y + 3)}" text-anchor="end" class="tick">{label}</text>')
        for i in range(0, self.n, max(1, math.ceil(self.n / 12))):
            out.append(f'<text x="{_fmt(self.x(i))}" y="{self.top + self.ph + 14}" text-anchor="middle" '
                       f'class="tick">{escape(str(x_labels[i]))}</text>')
        return out

    def threshold(self, value: float, label: str) -> list[str]:
        if not self.y_min <= value <= self.y_max:
            return []
        y = self.y(value)
        return [(f'<line class="threshold" x1="{self.left}" x2="{self.left + self.pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
                'stroke="#D55E00" stroke-dasharray="4 3"/>'
                f'<text x="{self.left + self.pw + 4}" y="{_fmt(y + 3)}" class="tick">{escape(label)}</text>')]

    def line(self, s: int, name: str, values: Sequence[float | None], x_labels: Sequence[str]) -> list[str]:
        colour = PALETTE[s % len(PALETTE)]
        out: list[str] = []
        segments: list[list[str]] = [[]]
        for i, v in enumerate(values[: self.n]):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                segments.append([])
                continue
            segments[-1].append(f"{_fmt(self.x(i))},{_fmt(self.y(v))}")
            out.append(f'<circle cx="{_fmt(self.x(i))}" cy="{_fmt(self.y(v))}" r="2.5" fill="{colour}">'
                       f"<title>{escape(name)} @ {escape(str(x_labels[i]))}: {v:.3g}</title></circle>")
        out += [f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(seg)}"/>'
                for seg in segments if len(seg) > 1]
        ly, lx = self.top + 12 + 14 * s, self.left + self.pw
        out.append(f'<line x1="{lx + 8}" x2="{lx + 22}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{lx + 26}" y="{ly}" class="legend">{escape(name[:16])}</text>')
        return out


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
    frame = _Frame(len(x_labels), width, height, bool(title), log_y, y_min, y_max)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-label="{escape(title or "chart")}">')]
    if title:
        out.append(f'<text x="{frame.left}" y="15" class="chart-title">{escape(title)}</text>')
    if frame.n == 0:
        out.append(f'<text x="{frame.left + frame.pw / 2}" y="{frame.top + frame.ph / 2}" text-anchor="middle">'
                   "no data yet</text></svg>")
        return "".join(out)
    out += frame.bands(marked or ())
    out += frame.axes(x_labels)
    if threshold is not None:
        out += frame.threshold(threshold, threshold_label)
    for s, (name, values) in enumerate(series.items()):
        out += frame.line(s, name, values, x_labels)
    out.append("</svg>")
    return "".join(out)
