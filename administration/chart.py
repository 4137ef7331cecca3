"""Small line charts drawn on the server as SVG, for the status page (no script, no external asset).

Each chart carries its own words (title and a one-line summary for screen readers); the page puts
the same numbers in a table beside it.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 600, 120  # drawing area in SVG units; the page scales it to its column
PAD_LEFT, PAD_BOTTOM = 44, 20


@dataclass(frozen=True)
class Line:
    label: str
    points: str  # "x,y x,y ..." for <polyline>
    css_class: str


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str
    top: float  # the value at the top of the axis
    unit: str
    lines: list[Line]
    width: int = WIDTH + PAD_LEFT
    height: int = HEIGHT + PAD_BOTTOM
    plot_left: int = PAD_LEFT
    plot_bottom: int = HEIGHT


def _nice_top(value: float) -> float:
    for top in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if value <= top:
            return float(top)
    return float(value)


def _points(samples, field: str, start: datetime, span: timedelta, top: float) -> str:
    coords = []
    for s in samples:
        value = getattr(s, field)
        if value is None:
            continue
        x = PAD_LEFT + WIDTH * (s.at - start) / span
        y = HEIGHT - HEIGHT * min(value, top) / top
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


def line_chart(samples, *, id: str, title: str, unit: str, series: list[tuple[str, str, str]], now: datetime,
               span: timedelta = timedelta(hours=1)) -> Chart:
    """`series` is (sample field, label, css class). The summary names the latest and the highest value."""
    start = now - span
    values = [getattr(s, f) for s in samples for f, _, _ in series if getattr(s, f) is not None]
    top = _nice_top(max(values, default=0))
    lines = [Line(label, _points(samples, field, start, span, top), css) for field, label, css in series]
    if not values:
        summary = "No samples were recorded in this period."
    else:
        last = samples[-1]
        latest = ", ".join(f"{label} {_fmt(getattr(last, field))}" for field, label, _ in series)
        summary = f"Latest: {latest} {unit}. Highest in the period: {_fmt(max(values))} {unit}."
    return Chart(id=id, title=title, summary=summary, top=top, unit=unit, lines=lines)


def _fmt(value) -> str:
    if value is None:
        return "none"
    return f"{value:.0f}" if float(value).is_integer() or value >= 100 else f"{value:.1f}"
