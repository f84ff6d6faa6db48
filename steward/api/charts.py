"""Server-side SVG charts: the dashboard needs a few charts and no build step, CDN or JavaScript.

Pure functions from numbers to an SVG string; the templates inline the result. Legends are left to
the page (HTML wraps on a narrow screen; text inside a scaled SVG does not), so a chart never draws
its legend over its own labels. Every piece of text is escaped here: labels come from user data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe palette (Okabe-Ito) first, then Tableau-style hues for collections with many classes.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999933",
           "#882255", "#44AA99", "#332288", "#AA4499", "#117733", "#88CCEE", "#DDCC77", "#661100",
           "#6699CC", "#AA4466", "#4477AA", "#228833")
BAND_COLOURS = {"drift": "#D55E00", "significant, small": "#E69F00"}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fmt(v: float) -> str:
    return f"{v:.1f}"


class _Frame:
    """The plot area and its scales: value -> pixel, for x positions and (log) y values."""

    def __init__(self, n: int, width: int, height: int, titled: bool, log_y: bool, y_min: float, y_max: float,
                 right: int):
        self.n, self.log_y, self.y_min, self.y_max = n, log_y, y_min, y_max
        self.left, self.top = 52, 26 if titled else 10
        self.pw, self.ph = width - self.left - right, height - self.top - 36

    def y(self, v: float) -> float:
        v = min(max(v, self.y_min), self.y_max)
        if self.log_y:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            frac = (math.log10(v) - lo) / (hi - lo)
        else:
            frac = (v - self.y_min) / ((self.y_max - self.y_min) or 1.0)
        return self.top + self.ph * (1.0 - frac)

    def x(self, i: float) -> float:
        return self.left + (self.pw * (i / (self.n - 1)) if self.n > 1 else self.pw / 2)

    def step(self) -> float:
        return self.pw / (self.n - 1) if self.n > 1 else self.pw / 2

    def bands(self, marked: Sequence[bool | str | None]) -> list[str]:
        half = self.step() / 2 if self.n > 1 else self.pw / 4  # a band spans its check's whole slot
        out = []
        for i, flag in enumerate(marked):
            status = "drift" if flag is True else flag
            if not status or status not in BAND_COLOURS:
                continue
            x0 = max(self.left, self.x(i) - half)
            x1 = min(self.left + self.pw, self.x(i) + half)
            out.append(f'<rect class="drift-band" data-status="{escape(status)}" x="{_fmt(x0)}" y="{self.top}" '
                       f'width="{_fmt(x1 - x0)}" height="{self.ph}" fill="{BAND_COLOURS[status]}" '
                       f'fill-opacity="0.14"><title>{escape(status)}</title></rect>')
        return out

    def y_ticks(self) -> list[float]:
        lo, hi = self.y_min, self.y_max
        if self.log_y:
            return [10.0**e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
        span = hi - lo
        raw = span / 4 if span > 0 else 1.0
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(lo / step) * step
        return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]

    def axes(self, x_labels: Sequence[str], y_label: str) -> list[str]:
        out = [(f'<rect x="{self.left}" y="{self.top}" width="{self.pw}" height="{self.ph}" fill="none" '
               'stroke="#999" stroke-width="0.5"/>')]
        for t in self.y_ticks():
            y = self.y(t)
            label = (f"1e{round(math.log10(t))}" if t < 0.01 else f"{t:g}") if self.log_y else f"{t:g}"
            out.append(f'<line x1="{self.left}" x2="{self.left + self.pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" stroke="#eee"/>')
            out.append(f'<text x="{self.left - 4}" y="{_fmt(y + 3)}" text-anchor="end" class="tick">{label}</text>')
        if y_label:
            mid = self.top + self.ph / 2
            out.append(f'<text x="11" y="{_fmt(mid)}" text-anchor="middle" class="axis-label" '
                       f'transform="rotate(-90 11 {_fmt(mid)})">{escape(y_label)}</text>')
        # At most one label per ~48 px, so labels never collide whatever the number of checks.
        every = max(1, math.ceil(self.n / max(1, self.pw // 48)))
        for i in range(0, self.n, every):
            out.append(f'<text x="{_fmt(self.x(i))}" y="{self.top + self.ph + 16}" text-anchor="middle" '
                       f'class="tick x-tick">{escape(str(x_labels[i]))}</text>')
        return out

    def threshold(self, value: float, label: str) -> list[str]:
        if not self.y_min <= value <= self.y_max:
            return []
        y = self.y(value)
        return [(f'<line class="threshold" x1="{self.left}" x2="{self.left + self.pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
                'stroke="#D55E00" stroke-dasharray="4 3"/>'
                f'<text x="{self.left + self.pw + 4}" y="{_fmt(y + 3)}" class="tick threshold-label">{escape(label)}</text>')]

    def vmark(self, i: int, label: str) -> str:
        # Between check i-1 and check i: the model changed there.
        x = self.x(i) - (self.step() / 2 if i > 0 else 0)
        return (f'<g class="version-mark"><line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{self.top}" '
                f'y2="{self.top + self.ph}" stroke="#555" stroke-dasharray="2 2"/>'
                f'<text x="{_fmt(x + 3)}" y="{self.top + 12}" class="tick">{escape(label)}</text></g>')

    def line(self, name: str, colour_: str, values: Sequence[float | None], x_labels: Sequence[str],
             fmt: str) -> list[str]:
        out: list[str] = []
        segments: list[list[str]] = [[]]
        for i, v in enumerate(values[: self.n]):
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                segments.append([])
                continue
            segments[-1].append(f"{_fmt(self.x(i))},{_fmt(self.y(v))}")
            clipped = " (off the scale)" if v > self.y_max else ""
            out.append(f'<circle cx="{_fmt(self.x(i))}" cy="{_fmt(self.y(v))}" r="2.5" fill="{colour_}">'
                       f"<title>{escape(name)} at {escape(str(x_labels[i]))}: {format(v, fmt)}{clipped}</title></circle>")
        out += [f'<polyline fill="none" stroke="{colour_}" stroke-width="1.5" points="{" ".join(seg)}"/>'
                for seg in segments if len(seg) > 1]
        return out


def line_chart_svg(
    series: Mapping[str, Sequence[float | None]],
    x_labels: Sequence[str],
    *,
    title: str = "",
    log_y: bool = True,
    y_min: float = 1e-4,
    y_max: float = 1.0,
    y_label: str = "",
    threshold: float | None = None,
    threshold_label: str = "alpha",
    marked: Sequence[bool | str | None] | None = None,
    vmarks: Sequence[tuple[int, str]] = (),
    colours: Mapping[str, str] | None = None,
    value_format: str = ".3g",
    width: int = 640,
    height: int = 240,
) -> str:
    """Lines over shared x positions; ``None`` values leave gaps. No legend: the page draws it.

    ``marked[i]`` draws a band behind x position ``i``: ``True`` or ``"drift"`` red, ``"significant, small"``
    amber. ``vmarks`` are ``(i, label)`` dashed vertical lines just before position ``i`` (a model change).
    Values are clipped to ``[y_min, y_max]`` (their tooltip says so) so a p-value of 0 still plots.
    """
    frame = _Frame(len(x_labels), width, height, bool(title), log_y, y_min, y_max, right=64)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title or "chart")}">')]
    if title:
        out.append(f'<text x="{frame.left}" y="15" class="chart-title">{escape(title)}</text>')
    if frame.n == 0:
        out.append(f'<text x="{frame.left + frame.pw / 2}" y="{frame.top + frame.ph / 2}" text-anchor="middle">'
                   "no data yet</text></svg>")
        return "".join(out)
    out += frame.bands(marked or ())
    out += frame.axes(x_labels, y_label)
    out += [frame.vmark(i, label) for i, label in vmarks if 0 <= i < frame.n]
    if threshold is not None:
        out += frame.threshold(threshold, threshold_label)
    for s, (name, values) in enumerate(series.items()):
        out += frame.line(name, (colours or {}).get(name, colour(s)), values, x_labels, value_format)
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class ScatterPoint:
    x: float
    y: float
    group: str  # colour group (the class)
    title: str  # tooltip
    ring: bool = False  # drawn with a dark outline (new items)
    cross: bool = False  # drawn as a cross (novel items)


def scatter_svg(points: Sequence[ScatterPoint], colours: Mapping[str, str], *, title: str = "",
                width: int = 640, height: int = 480) -> str:
    """A 2-D scatter: one circle per point, coloured by group; crosses on top so they stay visible."""
    pad, top = 12, 24 if title else 12
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart scatter" role="img" '
            f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
            f'aria-label="{escape(title or "scatter")}">')]
    if title:
        out.append(f'<text x="{pad}" y="15" class="chart-title">{escape(title)}</text>')
    out.append(f'<rect x="{pad}" y="{top}" width="{width - 2 * pad}" height="{height - top - pad}" fill="none" '
               'stroke="#ccc" stroke-width="0.5"/>')
    if not points:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no items</text></svg>')
        return "".join(out)
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad - 16) / ((x1 - x0) or 1.0)
    sy = (height - top - pad - 16) / ((y1 - y0) or 1.0)

    def px(p: ScatterPoint) -> tuple[str, str]:
        return _fmt(pad + 8 + (p.x - x0) * sx), _fmt(height - pad - 8 - (p.y - y0) * sy)

    ordered = sorted(points, key=lambda p: (p.cross, p.ring))  # marked points last, i.e. on top
    for p in ordered:
        cx, cy = px(p)
        fill = colours.get(p.group, "#777")
        tip = f"<title>{escape(p.title)}</title>"
        if p.cross:
            x, y = float(cx), float(cy)
            out.append(f'<path class="pt novel" d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}'
                       f'M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}" stroke="{fill}" stroke-width="2.2">{tip}</path>')
        elif p.ring:
            out.append(f'<circle class="pt new" cx="{cx}" cy="{cy}" r="3.6" fill="{fill}" stroke="#111" '
                       f'stroke-width="1.1">{tip}</circle>')
        else:
            out.append(f'<circle class="pt" cx="{cx}" cy="{cy}" r="2.6" fill="{fill}" fill-opacity="0.75">{tip}</circle>')
    out.append("</svg>")
    return "".join(out)
