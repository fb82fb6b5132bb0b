"""Small charts as inline SVG text, drawn on the server: lines, steps, scatters, Lorenz curves.

No script, font or file is loaded: a chart is one ``<svg>`` element a page
embeds as it is. Every point carries a ``<title>`` with its values (a browser
shows it on hover); the exact numbers are in the page's tables. Values are
floats here: charts are for the eye.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 580
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 68, 16, 34, 46
COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LEGEND_ROW = 16
MAX_MARKERS = 600
"""A line chart with more points than this draws no point markers (lines still name theirs)."""
LEGEND_TOP = 14  # space between the axis label and the legend


@dataclass
class Series:
    """One named line (or set of points) of a chart."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    step: bool = False  # a step line (the value holds until the next x)
    dashed: bool = False
    color: str = ""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def short(value: float) -> str:
    """A tick label: at most four significant digits, k/M/G/T for large magnitudes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            return f"{value / size:.4g}{suffix}"
    return f"{value:.4g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]``: steps of 1, 2 or 5 times a power of ten."""
    if not high > low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def no_data(title: str, reason: str) -> str:
    """A small placeholder chart saying why there is nothing to draw."""
    return (
        f'<svg class="chart no-data" role="img"'
        f' viewBox="0 0 {WIDTH} 90" width="{WIDTH}" height="90">'
        f"<title>{esc(title)}: no data</title>"
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="89" class="frame"/>'
        f'<text x="{WIDTH / 2}" y="36" text-anchor="middle" class="title">{esc(title)}</text>'
        f'<text x="{WIDTH / 2}" y="62" text-anchor="middle" class="note">no data: {esc(reason)}'
        "</text></svg>"
    )


def chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    scatter: bool = False,
    markers: bool = False,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    from_zero: bool = True,
    empty: str = "nothing yet",
) -> str:
    """Return one chart as ``<svg>`` text: lines (or points with ``scatter``) per series.

    ``diagonal`` draws the line of equality (Lorenz curves); ``from_zero``
    starts the y axis at 0 (else at the lowest value); a chart without a
    finite point is :func:`no_data` with ``empty`` as the reason.
    """
    series = [Series(s.name, finite(s.points), s.step, s.dashed, s.color) for s in series]
    points = [p for s in series for p in s.points]
    if not points:
        return no_data(title, empty)
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_lo, x_hi = x_range or (min(xs), max(xs))
    y_lo, y_hi = y_range or (min(0.0, min(ys)) if from_zero else min(ys), max(ys))
    x_ticks = nice_ticks(x_lo, x_hi)
    y_ticks = nice_ticks(y_lo, y_hi)
    if x_range is None and x_hi == x_lo:
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    elif x_range is None and scatter:  # room for the points at the edges
        pad = (x_hi - x_lo) * 0.04
        x_lo, x_hi = x_lo - pad, x_hi + pad
    if y_range is None:
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    named = [s for s in series if s.name] if len(series) > 1 else []
    legend_rows = _legend_rows(named)
    height = HEIGHT + (LEGEND_TOP + LEGEND_ROW * len(legend_rows) if legend_rows else 0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_lo) / ((x_hi - x_lo) or 1.0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_lo) / ((y_hi - y_lo) or 1.0) * plot_h

    out = [
        f'<svg class="chart" role="img"'
        f' viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">',
        f"<title>{esc(title)}</title>",
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" class="title">{esc(title)}</text>',
    ]
    for t in y_ticks:
        if y_lo <= t <= y_hi:
            y = sy(t)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                f"{esc(short(t))}</text>"
            )
    for t in x_ticks:
        if x_lo <= t <= x_hi:
            x = sx(t)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + plot_h}"'
                f' y2="{TOP + plot_h + 4}" class="axis"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 17}" text-anchor="middle"'
                f' class="tick">{esc(short(t))}</text>'
            )
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h + 36}" text-anchor="middle"'
        f' class="label">{esc(x_label)}</text>'
    )
    out.append(
        f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)"'
        f' text-anchor="middle" class="label">{esc(y_label)}</text>'
    )
    if diagonal:
        out.append(
            f'<line x1="{sx(x_lo):.1f}" y1="{sy(y_lo):.1f}" x2="{sx(x_hi):.1f}"'
            f' y2="{sy(y_hi):.1f}" class="equality"><title>equality</title></line>'
        )
    for i, s in enumerate(series):
        color = s.color or COLORS[i % len(COLORS)]
        s.color = color
        ordered = s.points if scatter else sorted(s.points)
        if not scatter and len(ordered) > 1:
            coords = []
            for j, (x, y) in enumerate(ordered):
                if s.step and j:
                    coords.append(f"{sx(x):.1f},{sy(ordered[j - 1][1]):.1f}")
                coords.append(f"{sx(x):.1f},{sy(y):.1f}")
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(
                f'<polyline points="{" ".join(coords)}" fill="none" stroke="{color}"'
                f' stroke-width="2"{dash}><title>{esc(s.name)}</title></polyline>'
            )
        if scatter or (markers and len(points) <= MAX_MARKERS) or len(ordered) == 1:
            radius = 3.5 if scatter else 2.5
            for x, y in ordered:
                label = f"{s.name}: " if s.name else ""
                out.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}"'
                    f' fill="{color}"><title>{esc(label)}{esc(x_label)} {x:.6g},'
                    f" {esc(y_label)} {y:.6g}</title></circle>"
                )
    for row_i, row in enumerate(legend_rows):
        y = HEIGHT + LEGEND_TOP + row_i * LEGEND_ROW
        for x, s in row:
            out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="4" fill="{s.color}"/>')
            out.append(f'<text x="{x + 16}" y="{y - 4}" class="legend">{esc(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _legend_rows(series: Sequence[Series]) -> list[list[tuple[float, Series]]]:
    """Lay the legend out left to right in rows under the plot."""
    rows: list[list[tuple[float, Series]]] = []
    x = float(LEFT)
    for s in series:
        width = 24 + 6.5 * len(s.name)
        if not rows or x + width > WIDTH - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, s))
        x += width + 10
    return rows


def lorenz(title: str, curves: Sequence[Series], *, population: str, share: str) -> str:
    """Lorenz curves (share of holders against share held) with the line of equality."""
    return chart(
        title,
        curves,
        x_label=population,
        y_label=share,
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        diagonal=True,
        empty="no holders",
    )
