"""Refunds per line: named lines and amounts, claimed before the gateway, visible failures."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from catalog.models import Sku
from orders.models import Order, OrderEmail, OrderLine, Refund, SandboxTrade
from orders.services import (
    RefundError,
    order_place,
    refund_flush,
    refund_request,
    refund_retry,
    refund_submit,
)
from tests.conftest import signed_notify
from tests.factories.catalog import BundleItemFactory, SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


def pay(client, order, trade_no="T1"):
    """Pay through the sandbox exactly as the hosted page would leave it."""
    sandbox_trade_paid(order, trade_no=trade_no)
    response = client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
    assert response.content == b"success"
    order.refresh_from_db()
    return order


@pytest.fixture
def card_bundle():
    """A 40.00 bundle of two card-code SKUs with face values 30 and 10."""
    big = SkuFactory(code="BIG", face_value=Decimal("30.00"))
    small = SkuFactory(code="SMALL", face_value=Decimal("10.00"))
    stock_codes(big, 2)
    stock_codes(small, 2)
    bundle = SkuFactory(
        code="BNDL", delivery=Sku.Delivery.BUNDLE, price=Decimal("40.00")
    )
    BundleItemFactory(bundle=bundle, component=big)
    BundleItemFactory(bundle=bundle, component=small)
    return bundle


@pytest.fixture
def paid_bundle(client, alice, card_bundle, django_capture_on_commit_callbacks):
    order = order_place(user=alice, sku_code="BNDL", quantity=1)
    with django_capture_on_commit_callbacks(execute=True):
        return pay(client, order)


def leaf(order, code):
    return order.lines.get(sku__code=code)


def test_paid_bundle_of_codes_delivers_every_part(paid_bundle):
    assert paid_bundle.status == Order.Status.DELIVERED
    assert set(paid_bundle.lines.values_list("status", flat=True)) == {"delivered"}
    assert [
        (x.sku.code, x.amount) for x in paid_bundle.lines.filter(parent__isnull=False)
    ] == [("BIG", Decimal("30.00")), ("SMALL", Decimal("10.00"))]


def test_refund_one_part_ends_order_partially_refunded_with_one_email(
    paid_bundle, django_capture_on_commit_callbacks
):
    small = leaf(paid_bundle, "SMALL")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(
            order=paid_bundle,
            lines=[(small, small.amount)],
            reason="卡密无法兑换，已退款",
            actor_kind=Refund.ActorKind.OPERATOR,
        )

    refund.refresh_from_db()
    paid_bundle.refresh_from_db()
    small.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.actor_kind == "operator"
    assert list(refund.lines.values_list("line__sku__code", "amount")) == [
        ("SMALL", Decimal("10.00"))
    ]
    assert paid_bundle.status == Order.Status.PARTIALLY_REFUNDED
    assert paid_bundle.refunded_amount == Decimal("10.00")
    assert isinstance(paid_bundle.refunded_amount, Decimal)
    assert small.status == OrderLine.Status.REFUNDED
    assert small.status_reason == "卡密无法兑换，已退款"
    assert len(mail.outbox) == 1
    assert "SMALL" not in mail.outbox[0].body  # the line's name, not its code
    assert "本次退款：¥10.00" in mail.outbox[0].body
    assert "卡密无法兑换，已退款" in mail.outbox[0].body
    assert OrderEmail.objects.get(refund=refund).status == OrderEmail.Status.SENT


def test_partial_refunds_add_up_and_never_exceed_what_was_paid(
    paid_bundle, django_capture_on_commit_callbacks
):
    big = leaf(paid_bundle, "BIG")
    with django_capture_on_commit_callbacks(execute=True):
        refund_request(order=paid_bundle, lines=[(big, Decimal("12.50"))], reason="a")
        refund_request(order=paid_bundle, lines=[(big, Decimal("17.50"))], reason="b")

    with pytest.raises(RefundError, match="最多可退"):
        refund_request(order=paid_bundle, lines=[(big, Decimal("0.01"))], reason="c")

    paid_bundle.refresh_from_db()
    big.refresh_from_db()
    assert big.refunded_amount == big.amount == Decimal("30.00")
    assert big.status == OrderLine.Status.REFUNDED
    assert paid_bundle.refunded_amount == Decimal("30.00")
    assert paid_bundle.status == Order.Status.PARTIALLY_REFUNDED
    assert Refund.objects.filter(status="succeeded").count() == 2
    assert OrderEmail.objects.filter(kind="refunded").count() == 2


@pytest.mark.parametrize("amount", ["0", "-1", "10.01"])
def test_refund_request_refuses_bad_amounts_and_writes_nothing(paid_bundle, amount):
    small = leaf(paid_bundle, "SMALL")

    with pytest.raises(RefundError):
        refund_request(order=paid_bundle, lines=[(small, Decimal(amount))], reason="x")

    small.refresh_from_db()
    assert small.refunded_amount == 0
    assert not Refund.objects.exists()


def test_gateway_refusal_ends_failed_visible_and_not_swept(
    paid_bundle, django_capture_on_commit_callbacks
):
    small = leaf(paid_bundle, "SMALL")
    # The gateway has no paid trade any more: it will refuse.
    SandboxTrade.objects.update(status=SandboxTrade.Status.CLOSED)
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(
            order=paid_bundle, lines=[(small, small.amount)], reason="x"
        )

    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert "sandbox refuses" in refund.last_error
    assert paid_bundle.events.filter(kind="refund_failed").count() == 1
    assert refund_flush() == 0
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.attempts == 1
    paid_bundle.refresh_from_db()
    assert paid_bundle.refunded_amount == 0


def test_operator_retry_sends_a_failed_refund_again_once(
    paid_bundle, operator, django_capture_on_commit_callbacks
):
    small = leaf(paid_bundle, "SMALL")
    SandboxTrade.objects.update(status=SandboxTrade.Status.CLOSED)
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(
            order=paid_bundle, lines=[(small, small.amount)], reason="x"
        )
    SandboxTrade.objects.update(status=SandboxTrade.Status.PAID)

    with django_capture_on_commit_callbacks(execute=True):
        assert refund_retry(refund_id=refund.id, actor=operator) is True
    assert refund_retry(refund_id=refund.id, actor=operator) is False

    refund.refresh_from_db()
    paid_bundle.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert paid_bundle.refunded_amount == Decimal("10.00")
    assert SandboxTrade.objects.get().refunded_amount == Decimal("10.00")


def test_refund_submit_claims_before_calling_so_a_second_call_does_nothing(
    paid_bundle,
):
    small = leaf(paid_bundle, "SMALL")
    refund = refund_request(
        order=paid_bundle, lines=[(small, small.amount)], reason="x"
    )
    # The task never ran (broker down); a worker claims it now.
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.PROCESSING)

    assert refund_submit(refund_id=refund.pk) is False

    assert SandboxTrade.objects.get().refunded_amount == 0


def test_refund_flush_resubmits_a_stale_processing_refund_once(paid_bundle):
    import datetime as dt

    from django.utils import timezone

    small = leaf(paid_bundle, "SMALL")
    refund = refund_request(
        order=paid_bundle, lines=[(small, small.amount)], reason="x"
    )
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Refund.objects.filter(pk=refund.pk).update(
        status=Refund.Status.PROCESSING, claimed_at=long_ago, created_at=long_ago
    )

    assert refund_flush() == 1
    assert refund_flush() == 0

    paid_bundle.refresh_from_db()
    assert paid_bundle.refunded_amount == Decimal("10.00")
    assert SandboxTrade.objects.get().refunded_amount == Decimal("10.00")
