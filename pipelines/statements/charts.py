"""Charts as inline SVG (no JavaScript, no CDN): statements and reports work offline.

Values are exact decimals everywhere else; here they only become coordinates, so floats are
fine. Labels are escaped. Each chart is an `<svg class="chart">` with a `<title>`, axes, and
its data drawn as a path (lines) or rects (bars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

from markupsafe import Markup

_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 64, 12, 24, 28
Point = tuple[str, Decimal | str]  # (x label, value)


def _nice_step(span: float, ticks: int) -> float:
    raw = span / max(ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _scale(values: list[float], ticks: int = 4) -> tuple[float, float, list[float]]:
    """A y range that includes 0 and every value, with round tick values."""
    low, high = min([0.0, *values]), max([0.0, *values])
    if high - low < 1e-9:
        high = low + 1
    step = _nice_step(high - low, ticks)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    count = round((high - low) / step)
    return low, high, [low + i * step for i in range(count + 1)]


def _shown(value: Decimal | str) -> str:
    """A data point's tooltip value: 2 decimals, rounded half away from zero (as the pages)."""
    exact = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{abs(exact) if exact == 0 else exact:,.2f}"


def _label(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:,.0f}k"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


class _Frame:
    """The plotting area of one chart and its coordinate mapping."""

    def __init__(self, width: int, height: int, values: list[float], slots: int) -> None:
        self.width, self.height = width, height
        self.low, self.high, self.ticks = _scale(values)
        self.left, self.top = _PAD_LEFT, _PAD_TOP
        self.inner_w = width - _PAD_LEFT - _PAD_RIGHT
        self.inner_h = height - _PAD_TOP - _PAD_BOTTOM
        self.slot = self.inner_w / max(slots, 1)

    def y(self, value: float) -> float:
        return self.top + (self.high - value) / (self.high - self.low) * self.inner_h

    def x(self, index: int) -> float:
        return self.left + (index + 0.5) * self.slot

    def axes(self, labels: Sequence[str]) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            css = "zero" if abs(tick) < 1e-12 else "grid"
            right = self.left + self.inner_w
            parts.append(
                f'<line class="{css}" x1="{self.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            )
            parts.append(
                f'<text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" '
                f'text-anchor="end">{escape(_label(tick))}</text>'
            )
        last = len(labels) - 1
        for i in sorted({0, last // 2, last}) if labels else ():
            x, anchor = self.x(i), "middle"
            if i == 0 and last > 0:
                x, anchor = self.left, "start"
            elif i == last and last > 0:
                x, anchor = self.left + self.inner_w, "end"
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{self.height - 8}" '
                f'text-anchor="{anchor}">{escape(labels[i])}</text>'
            )
        return parts


def _svg(title: str, frame: _Frame, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{frame.width}" height="{frame.height}" '
        f'viewBox="0 0 {frame.width} {frame.height}"><title>{escape(title)}</title>'
        f'<text class="title" x="{frame.left}" y="15">{escape(title)}</text>'
    )
    return Markup(head + "".join(body) + "</svg>")


def line_chart(title: str, points: Sequence[Point], width: int = 960, height: int = 220) -> Markup:
    """One series over the x labels (e.g. a closing balance per day); below 0 is shaded."""
    values = [float(v) for _, v in points]
    frame = _Frame(width, height, values, len(points))
    body = frame.axes([x for x, _ in points])
    coords = [(frame.x(i), frame.y(v)) for i, v in enumerate(values)]
    if len(coords) == 1:
        x, y = coords[0]
        coords = [(x - frame.slot / 2, y), (x + frame.slot / 2, y)]
    zero = frame.y(0.0)
    line = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
    area = f"{line} L{coords[-1][0]:.1f},{zero:.1f} L{coords[0][0]:.1f},{zero:.1f} Z"
    body.append(f'<path class="area" d="{area}"/>')
    body.append(f'<path class="line" d="{line}"/>')
    for (x, y), (label, value) in zip(coords, points, strict=False):
        css = "dot negative" if float(value) < 0 else "dot"
        body.append(
            f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="2">'
            f"<title>{escape(label)}: {escape(_shown(value))}</title></circle>"
        )
    return _svg(title, frame, body)


def bar_chart(title: str, points: Sequence[Point], width: int = 960, height: int = 220) -> Markup:
    """One bar per x label (e.g. credits consumed per day)."""
    values = [float(v) for _, v in points]
    frame = _Frame(width, height, values, len(points))
    body = frame.axes([x for x, _ in points])
    bar = max(frame.slot * 0.7, 1.0)
    zero = frame.y(0.0)
    for i, (label, value) in enumerate(points):
        y = frame.y(float(value))
        top, size = min(y, zero), max(abs(zero - y), 0.5)
        body.append(
            f'<rect class="bar" x="{frame.x(i) - bar / 2:.1f}" y="{top:.1f}" '
            f'width="{bar:.1f}" height="{size:.1f}">'
            f"<title>{escape(label)}: {escape(_shown(value))}</title></rect>"
        )
    return _svg(title, frame, body)
