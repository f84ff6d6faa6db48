"""The inline SVG chart: valid SVG, right geometry for the values given."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from steward.api.charts import line_chart_svg

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_lines_points_threshold_and_bands():
    svg = line_chart_svg(
        {"mmd": [0.5, 0.01, None, 0.2], "ks": [0.9, 0.0, 0.3, 0.4]},
        ["b1", "b2", "b3", "b4"],
        threshold=0.05,
        marked=[False, True, False, False],
        title="p <values> & more",
    )
    root = parse(svg)  # well-formed despite the markup characters in the title
    circles = root.findall(f"{NS}circle")
    assert len(circles) == 7  # one None is skipped
    # the gap splits mmd into two runs: one polyline of 2 points (a lone point draws no line), ks has one of 4
    polylines = [p.get("points").split() for p in root.findall(f"{NS}polyline")]
    assert sorted(len(p) for p in polylines) == [2, 4]
    assert len(root.findall(f"{NS}rect[@class='drift-band']")) == 1
    assert root.find(f"{NS}line[@class='threshold']") is not None


def test_log_scale_puts_smaller_p_values_lower_and_clips_zero():
    root = parse(line_chart_svg({"p": [1.0, 0.01, 0.0]}, ["a", "b", "c"], y_min=1e-4))
    ys = [float(c.get("cy")) for c in root.findall(f"{NS}circle")]
    assert ys[0] < ys[1] < ys[2]  # SVG y grows downwards
    # 0 is clipped to y_min, i.e. the bottom of the plot, as far below 0.01 as 0.01 is below 1
    assert abs((ys[2] - ys[1]) - (ys[1] - ys[0])) < 0.5


def test_empty_chart_says_so():
    root = parse(line_chart_svg({}, []))
    assert "no data yet" in "".join(root.itertext())


def test_version_marks_status_bands_and_x_labels_that_never_collide():
    labels = [f"b{i}" for i in range(1, 61)]
    svg = line_chart_svg({"p": [1.0] * 60}, labels, log_y=False, y_min=0.0, y_max=2.0, width=480,
                         marked=["drift", "significant, small"] + [None] * 58, vmarks=[(30, "v<2>")])
    root = parse(svg)
    ticks = [t.text for t in root.iter(f"{NS}text") if "x-tick" in (t.get("class") or "")]
    assert len(ticks) == len(set(ticks)) and len(ticks) <= 480 // 48 and ticks[0] == "b1"
    xs = [float(t.get("x")) for t in root.iter(f"{NS}text") if "x-tick" in (t.get("class") or "")]
    assert min(b - a for a, b in itertools.pairwise(xs)) >= 40  # room for a label each
    bands = root.findall(f"{NS}rect[@class='drift-band']")
    assert [b.get("data-status") for b in bands] == ["drift", "significant, small"]
    marks = root.findall(f"{NS}g[@class='version-mark']")
    assert len(marks) == 1 and "v<2>" in "".join(marks[0].itertext())  # escaped in the source, text when parsed
    assert "legend" not in svg  # the page draws the legend, so it never covers the chart


def test_scatter_marks_new_and_novel_points_and_escapes_titles():
    from steward.api.charts import ScatterPoint, scatter_svg

    pts = [ScatterPoint(0, 0, "a", "<i>x</i>"), ScatterPoint(1, 1, "b", "y", ring=True),
           ScatterPoint(2, 0, "a", "z", cross=True)]
    root = parse(scatter_svg(pts, {"a": "#000", "b": "#fff"}))
    classes = [e.get("class") for e in root.iter() if (e.get("class") or "").startswith("pt")]
    assert classes == ["pt", "pt new", "pt novel"]  # marked points drawn last, on top
    assert "<i>x</i>" in "".join(root.itertext())
