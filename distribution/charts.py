"""A daily bar chart's geometry, for a server-rendered SVG (no script, no style attribute).

Pure Python: takes (day, amount) points, returns what the template draws
(templates/distribution/partials/_chart.html). Amounts may be negative (a
clawback can outweigh a day's earnings): bars then hang below the zero line.
Coordinates are pre-formatted strings, so the template's number localisation
never turns "12.5" into "12,5" inside an SVG attribute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

CHART_WIDTH = 400  # viewBox units: on a phone about one unit per CSS pixel
CHART_HEIGHT = 200
# Room for the axis labels: left for amounts, bottom for dates.
PAD_LEFT = 52
PAD_RIGHT = 18  # half a date label: the newest day's label fits
PAD_TOP = 12
PAD_BOTTOM = 24
BAR_GAP_RATIO = 0.25  # of each day's slot, left empty between bars
DATE_LABEL_EVERY = 7  # days between labelled dates on the axis


def _fmt(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class Bar:
    day: dt.date
    amount: Decimal
    x: str
    y: str
    width: str
    height: str
    negative: bool


@dataclass(frozen=True)
class AxisLabel:
    text: str
    x: str
    y: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    plot_left: str
    plot_right: str
    zero_y: str
    amount_labels: list[AxisLabel]
    date_labels: list[AxisLabel]
    is_empty: bool  # every day zero: the template says so instead of a flat line


def bar_chart(points: Sequence[tuple[dt.date, Decimal]]) -> BarChart:
    """The bars and labels of a chart of these daily amounts, oldest first."""
    top = max((amount for _day, amount in points), default=Decimal(0))
    bottom = min((amount for _day, amount in points), default=Decimal(0))
    top, bottom = max(top, Decimal(0)), min(bottom, Decimal(0))
    span = float(top - bottom) or 1.0  # all zero: any scale draws nothing
    plot_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    plot_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    zero_y = PAD_TOP + plot_h * float(top) / span
    slot = plot_w / max(len(points), 1)
    bar_w = slot * (1 - BAR_GAP_RATIO)

    bars = []
    for i, (day, amount) in enumerate(points):
        h = plot_h * abs(float(amount)) / span
        y = zero_y - h if amount >= 0 else zero_y
        bars.append(
            Bar(
                day=day,
                amount=amount,
                x=_fmt(PAD_LEFT + i * slot + (slot - bar_w) / 2),
                y=_fmt(y),
                width=_fmt(bar_w),
                height=_fmt(h),
                negative=amount < 0,
            )
        )

    label_x = _fmt(PAD_LEFT - 6)
    amount_labels = [AxisLabel(f"{top:.2f}", label_x, _fmt(PAD_TOP + 4))]
    if bottom < 0:
        amount_labels.append(
            AxisLabel(f"{bottom:.2f}", label_x, _fmt(PAD_TOP + plot_h + 4))
        )
    if top > 0 and bottom < 0:
        amount_labels.append(AxisLabel("0", label_x, _fmt(zero_y + 4)))
    elif top == 0:
        amount_labels = [AxisLabel("0", label_x, _fmt(zero_y + 4))]

    # Dates counted back from the newest, so the last bar (today) is labelled.
    last = len(points) - 1
    date_labels = [
        AxisLabel(
            day.strftime("%m-%d"),
            _fmt(PAD_LEFT + i * slot + slot / 2),
            _fmt(CHART_HEIGHT - 8),
        )
        for i, (day, _amount) in enumerate(points)
        if (last - i) % DATE_LABEL_EVERY == 0
    ]
    return BarChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        bars=bars,
        plot_left=_fmt(PAD_LEFT),
        plot_right=_fmt(CHART_WIDTH - PAD_RIGHT),
        zero_y=_fmt(zero_y),
        amount_labels=amount_labels,
        date_labels=date_labels,
        is_empty=all(amount == 0 for _day, amount in points),
    )
