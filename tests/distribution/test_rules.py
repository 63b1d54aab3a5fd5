"""The pure arithmetic: commission per level, clawbacks, rule choice, reseller prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from distribution.commissions import (
    RuleCandidate,
    commission_amount,
    commission_clawback,
    commission_split,
    rule_pick,
)
from distribution.tiers import substore_price, tier_wholesale_price

D = Decimal


@pytest.mark.parametrize(
    ("base", "rate", "expected"),
    [
        ("100.00", "0.10", "10.00"),
        ("88.88", "0.05", "4.44"),  # 4.444 rounds down
        ("19.99", "0.15", "2.99"),  # 2.9985 rounds down, never up
        ("0.09", "0.10", "0.00"),
        ("10.00", "1", "10.00"),
        ("0.00", "0.10", "0.00"),
        ("10.00", "0", "0.00"),
    ],
)
def test_commission_amount_rounds_down_to_the_fen(base, rate, expected):
    assert commission_amount(base=D(base), rate=D(rate)) == D(expected)


def test_commission_split_applies_each_rate_on_its_own():
    shares = commission_split(base=D("88.88"), rates=[D("0.1"), D("0.05"), D("0")])

    assert [(s.level, s.rate, s.amount) for s in shares] == [
        (1, D("0.1"), D("8.88")),
        (2, D("0.05"), D("4.44")),
        (3, D("0"), D("0.00")),
    ]


def test_commission_split_scales_rates_above_100_percent_down_in_proportion():
    shares = commission_split(base=D("10.00"), rates=[D("0.7"), D("0.2"), D("0.3")])

    assert [s.rate for s in shares] == [D("0.5833"), D("0.1666"), D("0.2500")]
    assert [s.amount for s in shares] == [D("5.83"), D("1.66"), D("2.50")]
    assert sum(s.amount for s in shares) <= D("10.00")


def test_commission_split_refuses_a_fourth_level():
    with pytest.raises(ValueError, match="at most 3"):
        commission_split(base=D("1.00"), rates=[D("0.1")] * 4)


def test_commission_split_of_a_negative_base_is_nothing():
    assert [s.amount for s in commission_split(base=D("-5"), rates=[D("0.1")])] == [
        D("0.00")
    ]


def test_commission_clawback_keeps_what_the_remainder_earns():
    assert commission_clawback(
        earned_net=D("7.00"), rate=D("0.07"), base_left=D("66.67")
    ) == D("2.34")
    # Nothing changed since: nothing more to take back.
    assert commission_clawback(
        earned_net=D("4.66"), rate=D("0.07"), base_left=D("66.67")
    ) == D("0.00")


def test_rule_pick_most_specific_wins():
    rules = [
        RuleCandidate(level=1, rate=D("0.01")),
        RuleCandidate(level=1, rate=D("0.02"), tier_id=7),
        RuleCandidate(level=1, rate=D("0.03"), sku_id=5),
        RuleCandidate(level=1, rate=D("0.04"), tier_id=7, sku_id=5),
        RuleCandidate(level=2, rate=D("0.99")),
        RuleCandidate(level=1, rate=D("0.98"), tier_id=8, sku_id=5),
    ]

    def pick(tier_id, sku_id):
        rule = rule_pick(rules, level=1, tier_id=tier_id, sku_id=sku_id)
        return rule.rate if rule else None

    assert pick(7, 5) == D("0.04")
    assert pick(None, 5) == D("0.03")
    assert pick(7, 6) == D("0.02")
    assert pick(None, 6) == D("0.01")
    assert rule_pick(rules, level=3, tier_id=7, sku_id=5) is None


def test_tier_wholesale_price_prefers_the_tier_price_else_the_discount():
    assert tier_wholesale_price(
        retail=D("25.00"), discount_rate=D("0.1"), tier_price=D("20.00")
    ) == D("20.00")
    assert tier_wholesale_price(
        retail=D("25.00"), discount_rate=D("0.15"), tier_price=None
    ) == D("21.25")
    assert tier_wholesale_price(
        retail=D("0.01"), discount_rate=D("1"), tier_price=None
    ) == D("0.01")


def test_substore_price_adds_the_markup_but_never_goes_below_the_minimum():
    assert substore_price(
        wholesale=D("20.00"), markup_rate=D("0.125"), minimum=D("21.00")
    ) == D("22.50")
    assert substore_price(
        wholesale=D("20.00"), markup_rate=D("0"), minimum=D("23.00")
    ) == D("23.00")
    assert substore_price(
        wholesale=D("20.00"), markup_rate=D("0.05"), minimum=None
    ) == D("21.00")
