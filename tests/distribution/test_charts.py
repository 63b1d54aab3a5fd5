"""The daily commission chart's geometry (distribution/charts.py, pure)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from distribution.charts import bar_chart

D = Decimal
DAY0 = dt.date(2027, 3, 1)


def _points(*amounts: str) -> list[tuple[dt.date, Decimal]]:
    return [(DAY0 + dt.timedelta(days=n), D(a)) for n, a in enumerate(amounts)]


def test_bar_chart_scales_the_tallest_day_to_the_plot_height():
    chart = bar_chart(_points("10.00", "5.00", "0.00"))

    tall, half, empty = chart.bars
    assert float(tall.height) == pytest.approx(2 * float(half.height), abs=0.2)
    assert float(empty.height) == 0
    assert float(tall.y) + float(tall.height) == float(chart.zero_y)
    assert [label.text for label in chart.amount_labels] == ["10.00"]
    assert not chart.is_empty


def test_bar_chart_hangs_a_negative_day_below_the_zero_line():
    chart = bar_chart(_points("6.00", "-3.00"))

    up, down = chart.bars
    assert (up.negative, down.negative) == (False, True)
    assert down.y == chart.zero_y
    assert float(up.height) == pytest.approx(2 * float(down.height), abs=0.2)
    assert [label.text for label in chart.amount_labels] == ["6.00", "-3.00", "0"]


def test_bar_chart_of_quiet_days_says_it_is_empty():
    chart = bar_chart(_points(*["0.00"] * 30))

    assert chart.is_empty
    assert all(float(bar.height) == 0 for bar in chart.bars)
    assert [label.text for label in chart.amount_labels] == ["0"]


def test_bar_chart_labels_every_seventh_day_counting_back_from_the_newest():
    chart = bar_chart(_points(*["1.00"] * 30))

    assert [label.text for label in chart.date_labels] == [
        "03-02",
        "03-09",
        "03-16",
        "03-23",
        "03-30",
    ]
