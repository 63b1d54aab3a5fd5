"""Paid orders a risk rule holds: they wait in review; operators approve or reject."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fulfillment.models import CardCode
from fulfillment.services import card_codes_expire
from orders.models import Order, OrderEvent, Refund
from orders.services import order_expire_unpaid
from risk.models import RiskEvaluation, RiskRule
from tests.conftest import signed_notify
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.factories.risk import RiskRuleFactory

pytestmark = pytest.mark.django_db

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
CHANGELIST = reverse("admin:orders_order_changelist")


@pytest.fixture
def card(db):
    sku = SkuFactory(code="TX-M")
    stock_codes(sku, 5)
    return sku


@pytest.fixture
def shopper(alice):
    """Alice's own browser (the `client` fixture is the operator's in these tests)."""
    browser = Client()
    browser.force_login(alice)
    return browser


@pytest.fixture
def hold_rule(db):
    """Any order paid for two units or more waits for an operator."""
    return RiskRuleFactory(
        name="大额人工复核",
        kind=RiskRule.Kind.ORDER_QUANTITY,
        stage=RiskRule.StageChoice.PAID,
        subject="",
        window_seconds=None,
        threshold=1,
        action=RiskRule.ActionChoice.REVIEW,
    )


def _paid(shopper, quantity: int = 2, token: str = "t1") -> Order:  # noqa: S107
    """Checkout through the storefront, then the gateway's paid notify."""
    response = shopper.post(
        reverse("orders:checkout"),
        {"sku": "TX-M", "quantity": quantity, "token": token},
    )
    assert response.status_code == 302
    order = Order.objects.get(client_token=token)
    notify = signed_notify(order, trade_no=f"T-{token}")
    assert Client().post(NOTIFY_URL, notify).content == b"success"
    order.refresh_from_db()
    return order


def _reserved(order: Order) -> int:
    return CardCode.objects.filter(
        order_line__order=order, status=CardCode.Status.RESERVED
    ).count()


def _review(client: Client, order: Order, **data):
    return client.post(reverse("admin:orders_order_review", args=[order.pk]), data)


def _messages(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- held after payment ---------------------------------------------------------


def test_a_paid_order_a_rule_holds_waits_in_review_undelivered(
    shopper, card, hold_rule
):
    order = _paid(shopper)

    assert order.status == Order.Status.REVIEW
    assert order.paid_amount == order.total_amount
    assert _reserved(order) == 2
    assert not order.events.filter(kind=OrderEvent.Kind.DELIVERED).exists()
    reason = order.events.get(kind=OrderEvent.Kind.REVIEW).detail["reason"]
    assert "大额人工复核" in reason
    assert "units in one order" in reason
    evaluation = RiskEvaluation.objects.get(stage="paid")
    assert (evaluation.order_id, evaluation.decision) == (order.id, "review")
    page = shopper.get(reverse("orders:order-detail", args=[order.number]))
    assert "审核中" in page.content.decode()


def test_a_paid_stage_block_also_holds_rather_than_delivers(shopper, card):
    RiskRuleFactory(
        name="支付后拦截",
        kind=RiskRule.Kind.ORDER_QUANTITY,
        stage=RiskRule.StageChoice.PAID,
        threshold=0,
        action=RiskRule.ActionChoice.BLOCK,
    )

    order = _paid(shopper, quantity=1)

    assert order.status == Order.Status.REVIEW
    assert _reserved(order) == 1


def test_an_order_paid_after_cancellation_is_held_too(shopper, card, hold_rule):
    response = shopper.post(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 2, "token": "t1"}
    )
    assert response.status_code == 302
    order = Order.objects.get()
    order_expire_unpaid(now=timezone.now() + dt.timedelta(hours=1))

    late = Client().post(NOTIFY_URL, signed_notify(order, trade_no="T-late"))

    order.refresh_from_db()
    assert late.content == b"success"
    assert order.status == Order.Status.REVIEW  # re-reserved, then held
    assert _reserved(order) == 2
    evaluation = RiskEvaluation.objects.get(stage="paid")
    assert evaluation.inputs["payment_outcome"] == "reopened"


def test_an_order_no_rule_holds_is_delivered_at_once(shopper, card, hold_rule):
    order = _paid(shopper, quantity=1)

    assert order.status == Order.Status.DELIVERED
    assert RiskEvaluation.objects.get(stage="paid").decision == "allow"


def test_a_repeated_notify_neither_assesses_nor_holds_twice(shopper, card, hold_rule):
    order = _paid(shopper)

    again = Client().post(NOTIFY_URL, signed_notify(order, trade_no="T-t1"))

    assert again.content == b"success"
    assert RiskEvaluation.objects.filter(stage="paid").count() == 1
    assert order.events.filter(kind=OrderEvent.Kind.REVIEW).count() == 1


def test_codes_of_an_order_in_review_do_not_expire_under_it(shopper, card, hold_rule):
    order = _paid(shopper)
    later = timezone.now() + dt.timedelta(days=400)
    # Its payment deadline and the codes' own expiry both pass while it waits.
    CardCode.objects.filter(order_line__order=order).update(expires_at=timezone.now())

    cancelled = order_expire_unpaid(now=later)
    card_codes_expire(now=later)

    order.refresh_from_db()
    assert cancelled == 0
    assert order.status == Order.Status.REVIEW
    assert _reserved(order) == 2


# --- the queue in admin ---------------------------------------------------------


def test_the_queue_lists_held_orders_with_why(
    operator_client, shopper, card, hold_rule
):
    held = _paid(shopper)
    delivered = _paid(shopper, quantity=1, token="t2")

    page = operator_client.get(CHANGELIST, {"review": "waiting"})

    text = page.content.decode()
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [held]
    assert delivered.status == Order.Status.DELIVERED
    assert held.number in text
    assert delivered.number not in text
    assert "大额人工复核" in text
    assert reverse("admin:orders_order_review", args=[held.pk]) in text
    assert "approve_review" in text
    assert "reject_review" in text


def test_the_review_page_shows_the_rules_that_fired(
    operator_client, shopper, card, hold_rule
):
    order = _paid(shopper)

    page = operator_client.get(reverse("admin:orders_order_review", args=[order.pk]))
    change = operator_client.get(reverse("admin:orders_order_change", args=[order.pk]))

    text = page.content.decode()
    assert "大额人工复核" in text
    assert "units in one order: 2 &gt; 1" in text
    assert 'name="decision" value="approve"' in text
    assert '<label for="id_reason" class="required">' in text
    assert reverse("admin:orders_order_review", args=[order.pk]) in (
        change.content.decode()
    )


def test_approve_delivers_once_however_often_it_is_clicked(
    operator_client, shopper, card, hold_rule
):
    order = _paid(shopper)

    first = _review(operator_client, order, decision="approve")
    second = _review(operator_client, order, decision="approve")

    order.refresh_from_db()
    assert first.status_code == second.status_code == 302
    assert order.status == Order.Status.DELIVERED
    assert (
        CardCode.objects.filter(
            order_line__order=order, status=CardCode.Status.SOLD
        ).count()
        == 2
    )
    assert order.events.filter(detail__review="approved").count() == 1
    assert "已审核通过 1 笔订单，继续发货。" in _messages(first)
    assert any("已不在审核中" in m for m in _messages(second))


def test_reject_needs_a_reason_at_its_field(operator_client, shopper, card, hold_rule):
    order = _paid(shopper)

    response = _review(operator_client, order, decision="reject", reason="  ")

    order.refresh_from_db()
    text = response.content.decode()
    assert response.status_code == 400
    assert 'id="reason-errors"' in text
    assert "请填写拒绝原因" in text
    assert order.status == Order.Status.REVIEW
    assert not Refund.objects.exists()


def test_reject_refunds_in_full_and_frees_the_codes(
    operator_client,
    operator,
    shopper,
    card,
    hold_rule,
    django_capture_on_commit_callbacks,
):
    order = _paid(shopper)

    with django_capture_on_commit_callbacks(execute=True):
        response = _review(operator_client, order, decision="reject", reason="盗刷嫌疑")
    again = _review(operator_client, order, decision="reject", reason="盗刷嫌疑")

    order.refresh_from_db()
    refund = Refund.objects.get()
    assert response.status_code == again.status_code == 302
    assert order.status == Order.Status.REFUNDED
    assert (refund.amount, refund.reason, refund.actor) == (
        order.total_amount,
        "盗刷嫌疑",
        operator,
    )
    assert available(card) == 5
    assert any("已不在审核中" in m for m in _messages(again))


def test_bulk_approve_and_bulk_reject_with_a_reason(
    operator_client, shopper, card, hold_rule, django_capture_on_commit_callbacks
):
    one = _paid(shopper, token="t1")
    two = _paid(shopper, token="t2")

    operator_client.post(
        CHANGELIST,
        {"action": "approve_review", "_selected_action": [one.pk], "index": 0},
    )
    ask = operator_client.post(
        CHANGELIST,
        {"action": "reject_review", "_selected_action": [two.pk], "index": 0},
    )
    with django_capture_on_commit_callbacks(execute=True):
        done = operator_client.post(
            CHANGELIST,
            {"action": "reject_review", "_selected_action": [two.pk], "reason": "黑产"},
        )

    one.refresh_from_db()
    two.refresh_from_db()
    assert one.status == Order.Status.DELIVERED
    assert ask.status_code == 200
    assert two.number in ask.content.decode()
    assert done.status_code == 302
    assert two.status == Order.Status.REFUNDED
    assert Refund.objects.get().reason == "黑产"


def test_viewers_without_change_order_see_the_queue_but_cannot_decide(
    client, shopper, card, hold_rule
):
    order = _paid(shopper)
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_order", content_type__app_label="orders")
    )
    client.force_login(viewer)

    page = client.get(reverse("admin:orders_order_review", args=[order.pk]))
    listing = client.get(CHANGELIST, {"review": "waiting"})
    post = _review(client, order, decision="approve")
    action = client.post(
        CHANGELIST,
        {"action": "approve_review", "_selected_action": [order.pk], "index": 0},
    )

    order.refresh_from_db()
    assert page.status_code == 200
    assert "大额人工复核" in page.content.decode()
    assert 'name="decision"' not in page.content.decode()
    assert "approve_review" not in listing.content.decode()
    assert post.status_code == 403
    assert action.status_code == 200  # the admin ignores an action it does not offer
    assert order.status == Order.Status.REVIEW
