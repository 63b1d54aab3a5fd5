"""risk_assess_paid: the order's own signals, paid-stage rules, review instead of block."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from risk.models import RiskEvaluation, RiskRule, Subject
from risk.services import risk_assess_paid
from risk.types import Action
from tests.factories.risk import RiskListEntryFactory, RiskRuleFactory, risk_order

K = RiskRule.Kind
pytestmark = pytest.mark.django_db


def _paid_order(shopper, sku, **kwargs):
    defaults = {
        "created_at": timezone.now() - dt.timedelta(minutes=2),
        "ip": "198.51.100.7",
        "device": "dev-paid",
        "recharge_account": "13812345678",
        "status": Order.Status.PAID,
    }
    defaults.update(kwargs)
    return risk_order(user=shopper, sku=sku, **defaults)


def test_paid_block_becomes_review_and_names_the_rule(shopper, sku):
    rule = RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.DEVICE,
        threshold=1,
        stage="paid",
        name="设备频率",
    )
    _paid_order(shopper, sku)
    order = _paid_order(shopper, sku)

    assessment = risk_assess_paid(order_id=order.pk)

    assert assessment.action == Action.REVIEW
    assert [(f.rule_id, f.action) for f in assessment.fired] == [
        (rule.pk, Action.BLOCK)
    ]
    assert assessment.reasons == "设备频率: orders per device in 3600s: 2 > 1"
    record = RiskEvaluation.objects.get(pk=assessment.evaluation_id)
    assert (record.order_id, record.stage, record.decision) == (
        order.pk,
        "paid",
        "review",
    )
    assert record.inputs["payment_outcome"] == "paid"
    assert record.inputs["recharge_account"] == "****5678"


def test_paid_counts_the_order_itself_once(shopper, sku):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=1, stage="both"
    )
    order = _paid_order(shopper, sku)

    assert risk_assess_paid(order_id=order.pk).action == Action.ALLOW


def test_paid_ignores_checkout_only_rules_and_reads_the_order(shopper, sku):
    RiskRuleFactory(kind=K.ORDER_QUANTITY, subject="", threshold=1, stage="checkout")
    RiskRuleFactory(
        kind=K.NEW_ACCOUNT,
        subject="",
        threshold=Decimal(10),
        window_seconds=3600,
        stage="paid",
    )
    RiskListEntryFactory(
        list_kind="block", subject="recharge_account", value="13812345678"
    )
    RiskRuleFactory(
        kind=K.BLOCKLIST,
        subject=Subject.RECHARGE_ACCOUNT,
        stage="paid",
        action="review",
    )
    order = _paid_order(shopper, sku, quantity=3, amount=Decimal("5.00"))

    assessment = risk_assess_paid(order_id=order.pk)

    # quantity 3 is only a checkout rule's business; 5 yuan by a new account is
    # under 10; the recharge account is listed.
    assert assessment.action == Action.REVIEW
    assert [f.kind for f in assessment.fired] == ["blocklist"]


def test_paid_is_idempotent_per_payment_outcome(shopper, sku):
    RiskRuleFactory(
        kind=K.ORDER_QUANTITY, subject="", threshold=1, stage="paid", action="review"
    )
    order = _paid_order(shopper, sku, quantity=2)

    first = risk_assess_paid(order_id=order.pk)
    repeated = risk_assess_paid(order_id=order.pk)
    reopened = risk_assess_paid(order_id=order.pk, payment_outcome="reopened")

    assert repeated == first
    assert reopened.evaluation_id != first.evaluation_id
    assert RiskEvaluation.objects.filter(order=order).count() == 2


def test_paid_unknown_order_raises(db):
    with pytest.raises(Order.DoesNotExist):
        risk_assess_paid(order_id=999999)
