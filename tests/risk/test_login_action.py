"""The `login` action: a guest is asked to log in; an account's checkout goes on."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Order
from orders.views import ERR_LOGIN_FIRST
from risk.models import RiskEvaluation, RiskRule
from risk.rules import Kind
from risk.types import Action, Severity, Stage
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.factories.risk import RiskRuleFactory
from tests.risk.conftest import purge_counters, redis_url, use_redis
from tests.risk.test_rules import decide, rule, signals

CHECKOUT = reverse("orders:checkout")
GUEST = {
    "sku": "TX-M",
    "quantity": 2,
    "token": "g1",
    "email": "guest@example.com",
    "lookup_password": "secret12",
    "lookup_password2": "secret12",
}


def _login_rule(**kwargs):
    return rule(
        kind=Kind.ORDER_QUANTITY, threshold=Decimal(1), action=Action.LOGIN, **kwargs
    )


def test_the_action_is_the_models_and_ranks_between_captcha_and_review():
    assert Action.LOGIN.value in RiskRule.ActionChoice.values
    assert Severity.CAPTCHA < Severity.LOGIN < Severity.REVIEW


def test_a_guest_is_asked_to_log_in_an_account_is_let_through():
    guest = decide([_login_rule()], signals(user_id=None, quantity=2))
    account = decide([_login_rule()], signals(user_id=7, quantity=2))

    assert guest.action == Action.LOGIN
    assert account.action == Action.ALLOW
    assert account.fired[0].action == Action.LOGIN  # still reported


def test_a_block_behind_the_login_rule_still_stops_an_account():
    block = rule(id=2, kind=Kind.ORDER_QUANTITY, threshold=Decimal(1), priority=200)

    verdict = decide([_login_rule(priority=100), block], signals(quantity=2))

    assert verdict.action == Action.BLOCK


def test_at_the_paid_stage_a_guests_login_becomes_review():
    verdict = decide(
        [_login_rule(stage="paid")],
        signals(stage=Stage.PAID, user_id=None, quantity=2),
    )

    assert verdict.action == Action.REVIEW


# --- through the checkout ---------------------------------------------------------


@pytest.fixture
def card(db, settings):
    use_redis(settings)
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"))
    stock_codes(sku, 10)
    # More than one unit needs an account.
    RiskRuleFactory(
        name="多件需登录",
        kind=RiskRule.Kind.ORDER_QUANTITY,
        subject="",
        window_seconds=None,
        threshold=1,
        action=RiskRule.ActionChoice.LOGIN,
    )
    yield sku
    purge_counters(redis_url(settings))


@pytest.mark.django_db
def test_a_guest_whose_checkout_fires_it_is_asked_to_log_in(card):
    guest = Client()

    response = guest.post(CHECKOUT, GUEST)
    one = guest.post(CHECKOUT, {**GUEST, "quantity": 1, "token": "g2"})

    assert response.status_code == 403
    text = response.content.decode()
    assert str(ERR_LOGIN_FIRST) in text
    assert reverse("account_login") + "?next=" in text
    assert RiskEvaluation.objects.filter(decision="login").count() == 1
    # Nothing made for the stopped one; the rule leaves a single unit alone.
    assert one.status_code == 302
    assert list(Order.objects.values_list("email", "lines__quantity")) == [
        ("guest@example.com", 1)
    ]


@pytest.mark.django_db
def test_a_logged_in_shopper_goes_on_as_if_allowed(card):
    shopper = Client()
    shopper.force_login(UserFactory(username="bob", email="bob@example.com"))

    response = shopper.post(CHECKOUT, {"sku": "TX-M", "quantity": 2, "token": "b1"})

    assert response.status_code == 302
    assert Order.objects.get().lines.get().quantity == 2
    assert RiskEvaluation.objects.get().decision == "allow"
