"""Threaded payment notifies on PostgreSQL: racing the expiry sweep, each other, a rival.

Each race starts its threads at a Barrier, each thread on its own connection
(closed at its end), with Celery eager so the refund and email tasks run in
whichever thread commits them, as a worker would right after. Whatever order
the threads happen to run in, the books must say the same thing: one delivery
or one refund per payment, never a code released from a paid order, never a
refund of money we did not take.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.core import mail
from django.db import connection, transaction
from django.db.models import F, Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fulfillment.models import CardCode
from fulfillment.services import OutOfStockError
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    Refund,
    SandboxTrade,
)
from orders.services import order_expire_unpaid, order_place, payment_notify_handle
from tests.conftest import signed_notify
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.factories.orders import sandbox_trade_paid

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
ROUNDS = 12
Outcome = PaymentNotify.Outcome


def _race(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs at once, one thread each; returns each one's result or exception."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = job()
        except Exception as exc:  # the test shows it, with its type
            results[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer deadlocked"
    return results


def _paid_trade(order: Order, trade_no: str) -> dict[str, str]:
    """The gateway's record of a paid trade, and the notify it signs for it."""
    sandbox_trade_paid(order, trade_no=trade_no)
    return signed_notify(order, trade_no=trade_no)


def _notify(fields: dict[str, str]) -> str:
    return payment_notify_handle(gateway_name="sandbox", fields=fields).outcome


def _post_notify(fields: dict[str, str]) -> tuple[int, bytes]:
    response = Client().post(NOTIFY_URL, fields)
    return response.status_code, response.content


def _card_order(sku_code: str, *, quantity: int = 1, expired: bool = False) -> Order:
    order = order_place(user=UserFactory(), sku_code=sku_code, quantity=quantity)
    if expired:
        Order.objects.filter(pk=order.pk).update(
            expires_at=timezone.now() - dt.timedelta(minutes=1)
        )
    return order


def _sold_to(line: OrderLine) -> int:
    return CardCode.objects.filter(order_line=line, status=CardCode.Status.SOLD).count()


def _succeeded_refunds(order: Order) -> Decimal:
    total = Refund.objects.filter(
        order=order, status=Refund.Status.SUCCEEDED
    ).aggregate(s=Sum("amount"))["s"]
    return total or Decimal(0)


def _events(order: Order, kind: str) -> int:
    return OrderEvent.objects.filter(order=order, kind=kind).count()


def _rival_checkout(sku_code: str) -> Callable[[], str]:
    """Another shopper keeps trying to buy the same codes for a short while."""
    user = UserFactory()

    def buy() -> str:
        deadline = timezone.now() + dt.timedelta(milliseconds=300)
        while timezone.now() < deadline:
            try:
                order_place(user=user, sku_code=sku_code, quantity=1)
            except OutOfStockError:
                continue
            return "bought"
        return "sold_out"

    return buy


@pytest.mark.django_db(transaction=True)
def test_notify_racing_expiry_ends_delivered_or_refunded_never_paid_without_codes(
    monkeypatch,
):
    assert connection.vendor == "postgresql"
    # The payment lands just after the expiry asked the gateway (which then
    # knew of none): the expiry cancels, racing the notify. A payment the query
    # finds is honoured instead (tests/orders/test_lost_notifies.py).
    monkeypatch.setattr(
        "orders.services.notify_sweep.payment_lost_notify_check",
        lambda *, out_trade_no: False,
    )

    for round_no in range(ROUNDS):
        # given: an unpaid order past its deadline holding the SKU's only code;
        # every other round a rival shopper is after that code too
        sku = SkuFactory(code=f"RACE-EXP-{round_no}", price=Decimal("30.00"))
        stock_codes(sku, 1)
        order = _card_order(sku.code, expired=True)
        line = order.lines.get()
        fields = _paid_trade(order, f"T-EXP-{round_no}")
        jobs: list[Callable[[], Any]] = [partial(_notify, fields), order_expire_unpaid]
        if round_no % 2:
            jobs.append(_rival_checkout(sku.code))

        # when
        outcome, _expired, *rival = _race(*jobs)

        # then
        assert outcome in (Outcome.PAID, Outcome.REFUNDED), outcome
        assert not isinstance(_expired, Exception), _expired
        order.refresh_from_db()
        line.refresh_from_db()
        cancelled = _events(order, OrderEvent.Kind.CANCELLED) == 1
        assert Payment.objects.filter(order=order).count() == 1
        assert order.paid_amount == order.total_amount
        if order.status == Order.Status.DELIVERED:
            assert outcome == Outcome.PAID
            assert line.status == OrderLine.Status.DELIVERED
            assert _sold_to(line) == 1, "paid and delivered, but its code is gone"
            assert not Refund.objects.filter(order=order).exists()
            # Cancelled first, then paid: the code was taken back for it.
            assert _events(order, OrderEvent.Kind.REOPENED) == int(cancelled)
            assert rival in ([], ["sold_out"])
            assert _events(order, OrderEvent.Kind.DELIVERED) == 1
            assert OrderEmail.objects.filter(order=order).count() == 1
        else:
            # Only a rival who bought the released code can leave it without stock.
            assert order.status == Order.Status.REFUNDED, order.status
            assert cancelled
            assert rival == ["bought"]
            assert line.status == OrderLine.Status.REFUNDED
            assert not CardCode.objects.filter(order_line=line).exists()
            assert _succeeded_refunds(order) == order.total_amount
            assert order.refunded_amount == order.total_amount
            assert _events(order, OrderEvent.Kind.DELIVERED) == 0
            assert list(
                OrderEmail.objects.filter(order=order).values_list("kind", flat=True)
            ) == [OrderEmail.Kind.REFUNDED]
        # One code, one owner: ours (sold), the rival's (reserved) or nobody's.
        code = CardCode.objects.get(sku=sku)
        if code.status == CardCode.Status.SOLD:
            assert code.order_line_id == line.pk
        elif code.status == CardCode.Status.RESERVED:
            assert code.order_line.order.user_id != order.user_id
        else:
            assert code.status == CardCode.Status.AVAILABLE

    # Money never goes back without a payment of that order behind it.
    for payment in Payment.objects.all():
        back = Refund.objects.filter(payment=payment).aggregate(s=Sum("amount"))["s"]
        assert (back or 0) <= payment.amount
    assert not Refund.objects.exclude(payment__order_id=F("order_id")).exists()


@pytest.mark.django_db(transaction=True)
def test_same_trade_notified_twice_at_once_pays_delivers_and_emails_once():
    sku = SkuFactory(code="RACE-DUP", price=Decimal("30.00"))
    stock_codes(sku, 2 * ROUNDS)

    for round_no in range(ROUNDS):
        # given
        order = _card_order(sku.code, quantity=2)
        fields = _paid_trade(order, f"T-DUP-{round_no}")
        mail.outbox.clear()

        # when: the gateway's retry overtakes its first notify
        replies = _race(partial(_post_notify, fields), partial(_post_notify, fields))

        # then: both answered `success`, one of them as a duplicate
        assert replies == [(200, b"success"), (200, b"success")], replies
        outcomes = Counter(
            PaymentNotify.objects.filter(order=order).values_list("outcome", flat=True)
        )
        assert outcomes == Counter({Outcome.PAID: 1, Outcome.DUPLICATE: 1})
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert Payment.objects.filter(order=order).count() == 1
        assert order.paid_amount == order.total_amount
        assert _sold_to(order.lines.get()) == 2
        assert _events(order, OrderEvent.Kind.PAID) == 1
        assert _events(order, OrderEvent.Kind.DELIVERED) == 1
        assert OrderEmail.objects.filter(order=order).count() == 1
        assert [m.to for m in mail.outbox] == [[order.email]]
        assert not Refund.objects.filter(order=order).exists()
    assert CardCode.objects.filter(sku=sku, status="sold").count() == 2 * ROUNDS


@pytest.mark.django_db(transaction=True)
def test_two_trades_for_one_order_at_once_deliver_once_and_refund_the_other_whole():
    sku = SkuFactory(code="RACE-TWO", price=Decimal("30.00"))
    stock_codes(sku, ROUNDS)
    paid_all = refunded_all = delivered_all = Decimal(0)

    for round_no in range(ROUNDS):
        # given: the shopper paid twice (two tabs, two trades)
        order = _card_order(sku.code)
        first = _paid_trade(order, f"T-A-{round_no}")
        second = _paid_trade(order, f"T-B-{round_no}")

        # when
        outcomes = _race(partial(_notify, first), partial(_notify, second))

        # then: one trade delivers, the other goes back whole
        assert Counter(outcomes) == Counter({Outcome.PAID: 1, Outcome.REFUNDED: 1})
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert _sold_to(order.lines.get()) == 1
        assert _events(order, OrderEvent.Kind.DELIVERED) == 1
        refunded_trade = (first, second)[outcomes.index(Outcome.REFUNDED)]["trade_no"]
        (refund,) = Refund.objects.filter(order=order)
        assert refund.status == Refund.Status.SUCCEEDED
        assert refund.payment.trade_no == refunded_trade
        assert refund.amount == order.total_amount
        assert not refund.lines.exists()  # it bought nothing: no line gives money back
        assert refund.payment.status == Payment.Status.REFUNDED
        kept = Payment.objects.get(order=order, status=Payment.Status.SUCCEEDED)
        assert kept.trade_no != refunded_trade
        trade = SandboxTrade.objects.get(trade_no=refunded_trade)
        assert trade.refunded_amount == order.total_amount
        # paid − refunded = delivered, on the order and in the payments
        paid = Payment.objects.filter(order=order).aggregate(s=Sum("amount"))["s"]
        delivered = order.lines.get(status=OrderLine.Status.DELIVERED).amount
        assert paid == order.paid_amount == 2 * order.total_amount
        assert paid - _succeeded_refunds(order) == delivered
        assert order.refunded_amount == order.total_amount
        paid_all += paid
        refunded_all += _succeeded_refunds(order)
        delivered_all += delivered

    assert paid_all - refunded_all == delivered_all == ROUNDS * Decimal("30.00")


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_notify_that_waited_for_the_order_lock_sells_the_codes_reserved_meanwhile():
    # The notify's lock statement reads the lines with its snapshot, older
    # than the lock when it had to wait: it must not sell by that old picture.
    sku = SkuFactory(code="RACE-SWAP", price=Decimal("30.00"))
    stock_codes(sku, 2)
    order = _card_order(sku.code)
    line = order.lines.get()
    fields = _paid_trade(order, "T-SWAP")
    old = CardCode.objects.get(order_line=line)
    new = CardCode.objects.exclude(pk=old.pk).get(sku=sku)
    locked, release = threading.Event(), threading.Event()

    def swap_codes() -> None:
        # Under the order's lock, its line's code is replaced (the order row
        # changes with it, as with every change of a pending order's lines).
        with transaction.atomic():
            Order.objects.select_for_update().get(pk=order.pk)
            now = timezone.now()
            CardCode.objects.filter(pk=old.pk).update(
                status=CardCode.Status.AVAILABLE, order_line=None, reserved_at=None
            )
            CardCode.objects.filter(pk=new.pk).update(
                status=CardCode.Status.RESERVED, order_line=line, reserved_at=now
            )
            Order.objects.filter(pk=order.pk).update(updated_at=now)
            locked.set()
            assert release.wait(timeout=10)

    def notify_once_it_waits() -> str:
        assert locked.wait(timeout=10)
        return _notify(fields)

    def release_once_notify_waits() -> None:
        deadline = timezone.now() + dt.timedelta(seconds=10)
        while not _waiting_on_a_lock() and timezone.now() < deadline:
            threading.Event().wait(0.02)
        release.set()

    swapped, outcome, _released = _race(
        swap_codes, notify_once_it_waits, release_once_notify_waits
    )

    assert swapped is None
    assert outcome == Outcome.PAID
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert CardCode.objects.get(pk=new.pk).status == CardCode.Status.SOLD
    assert CardCode.objects.get(pk=old.pk).status == CardCode.Status.AVAILABLE
