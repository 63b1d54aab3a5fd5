from __future__ import annotations

import datetime as dt

from catalog.validity import Validity, describe, redeem_deadline


def test_redeem_deadline_takes_the_earlier_rule():
    rule = Validity(
        duration_days=31, redeem_by=dt.date(2027, 1, 10), redeem_within_days=30
    )

    assert redeem_deadline(rule, sold_on=dt.date(2026, 12, 1)) == dt.date(2026, 12, 31)
    assert redeem_deadline(rule, sold_on=dt.date(2026, 12, 20)) == dt.date(2027, 1, 10)


def test_redeem_deadline_none_without_rules():
    assert (
        redeem_deadline(Validity(31, None, None), sold_on=dt.date(2026, 1, 1)) is None
    )


def test_describe_mentions_each_rule():
    text = describe(
        Validity(
            duration_days=31, redeem_by=dt.date(2027, 1, 10), redeem_within_days=None
        )
    )

    assert "31" in text
    assert "2027-01-10" in text
    assert describe(Validity(None, None, None)) == "长期有效"
