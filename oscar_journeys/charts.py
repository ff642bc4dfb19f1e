"""Small line charts drawn as inline SVG on the server (no JavaScript, nothing vendored).

``line_chart()`` turns a series of (date, value) into the geometry a template draws: the
polyline points, the axis ticks and their positions. The template
``oscar_journeys/admin/includes/line_chart.html`` renders it, so every text stays escaped
and translatable there. Missing values (None or NaN) break the line into segments; a lone
value between two gaps is drawn as a dot.
"""

import math
from dataclasses import dataclass, field


@dataclass
class Tick:
    position: float  # x or y in SVG units
    value: object  # a number (y axis) or a date (x axis), formatted by the template


@dataclass
class LineChart:
    title: str
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    segments: list = field(default_factory=list)  # "x,y x,y ..." strings, one per polyline
    dots: list = field(default_factory=list)  # (x, y) of values without neighbours
    y_ticks: list = field(default_factory=list)
    x_ticks: list = field(default_factory=list)
    latest: object = None  # the last known value, for the caption
    count: int = 0  # values drawn

    @property
    def plot_width(self):
        return self.right - self.left

    @property
    def plot_height(self):
        return self.bottom - self.top

    @property
    def x_label_y(self):
        return self.bottom + 14

    @property
    def x_tick_end(self):
        return self.bottom + 4

    @property
    def y_label_x(self):
        return self.left - 5

    @property
    def middle_y(self):
        return (self.top + self.bottom) / 2

    @property
    def x_title_y(self):
        return self.height - 3

    @property
    def x_title_x(self):
        return (self.left + self.right) / 2

    @property
    def is_empty(self):
        return self.count == 0


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def nice_ticks(low, high, count=4):
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    n = round((last - first) / step)
    return [round(first + i * step, 10) for i in range(n + 1)]


def line_chart(dates, values, *, title="", width=360, height=170, margin=(10, 12, 38, 52)):
    """Geometry of a line chart of ``values`` over ``dates`` (both oldest first).

    ``margin`` is (top, right, bottom, left) in SVG units: room for the tick labels on the
    left and for the date labels and the axis title below. The y axis starts at zero unless
    a value is negative."""
    top, right_margin, bottom_margin, left = margin
    chart = LineChart(
        title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        right=width - right_margin,
        bottom=height - bottom_margin,
    )
    known = [(d, float(v)) for d, v in zip(dates, values) if not _missing(v)]
    chart.count = len(known)
    if not known:
        return chart
    chart.latest = known[-1][1]

    ticks = nice_ticks(min(0.0, min(v for _, v in known)), max(v for _, v in known))
    y_low, y_high = ticks[0], ticks[-1]

    def y_of(value):
        return chart.bottom - (value - y_low) / (y_high - y_low) * chart.plot_height

    chart.y_ticks = [Tick(round(y_of(t), 1), t) for t in ticks]

    first_day, last_day = dates[0].toordinal(), dates[-1].toordinal()
    span = last_day - first_day

    def x_of(day):
        if span == 0:
            return chart.left + chart.plot_width / 2
        return chart.left + (day.toordinal() - first_day) / span * chart.plot_width

    shown = [dates[0]] if span == 0 else [dates[0], dates[len(dates) // 2], dates[-1]]
    chart.x_ticks = [Tick(round(x_of(d), 1), d) for d in dict.fromkeys(shown)]

    run = []
    for day, value in list(zip(dates, values)) + [(None, None)]:
        if day is not None and not _missing(value):
            run.append((round(x_of(day), 1), round(y_of(float(value)), 1)))
            continue
        if len(run) == 1:
            chart.dots.append(run[0])
        elif run:
            chart.segments.append(" ".join(f"{x},{y}" for x, y in run))
        run = []
    return chart
