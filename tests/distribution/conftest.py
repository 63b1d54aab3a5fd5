"""Personas for resellers: bob (a root reseller), carol (bob's downline), dave (carol's).

alice (tests/conftest.py) is the shopper. Commission rules: level 1 10 %,
level 2 5 %, level 3 2 %, unless a test sets its own.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import ResellerFactory, TierFactory, rule_set


@pytest.fixture
def tier(db):
    return TierFactory(name="普通代理", is_default=True)


@pytest.fixture
def bob(tier):
    return ResellerFactory(user=UserFactory(username="bob"), tier=tier)


@pytest.fixture
def carol(bob):
    return ResellerFactory(
        user=UserFactory(username="carol"), parent=bob, tier=bob.tier
    )


@pytest.fixture
def dave(carol):
    return ResellerFactory(
        user=UserFactory(username="dave"), parent=carol, tier=carol.tier
    )


@pytest.fixture
def rules(db):
    return [rule_set(1, "0.10"), rule_set(2, "0.05"), rule_set(3, "0.02")]


@pytest.fixture
def sku(db):
    return SkuFactory(code="TX-VIP-MONTH", price=Decimal("100.00"))


@pytest.fixture
def payout_minimum(settings):
    settings.PAYOUT_MINIMUM = Decimal("10.00")
    settings.COMMISSION_SETTLEMENT_DAYS = 7
    return settings.PAYOUT_MINIMUM
