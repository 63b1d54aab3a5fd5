"""The lost-notify sweep: payments whose gateway notify never arrived.

A real gateway's notify can be lost (its retries ended while we were down, a
proxy ate it). Before an order expires, and again right before the expiry
sweep cancels it, `payment_lost_notify_check` asks the gateways about the
order's trade and honours a paid one through the notify's own path
(`payment_query_apply`). (A gateway's own re-sending of a notify is the
gateway's business: the built-in one keeps its own outbox and sweep in its
module, orders/gateways/.)

Gateway queries are network calls: made outside any transaction, one order at
a time.
"""

from __future__ import annotations

import datetime as dt
import logging

import httpx
from django.utils import timezone

from config.lib.errors import DomainError
from orders.gateways import Gateway, gateways_all
from orders.models import Order, PaymentNotify
from orders.services.payments import payment_query_apply

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
# Pending orders this close to their deadline (or this far past it, not yet
# cancelled) have their trades looked up; the sweep runs every minute.
LOST_AHEAD = dt.timedelta(minutes=2)
LOST_BEHIND = dt.timedelta(minutes=1)
# What a query-found payment may leave as its outcome: the order was paid by it.
_PAID_OUTCOMES = (
    PaymentNotify.Outcome.PAID,
    PaymentNotify.Outcome.REFUNDED,
    PaymentNotify.Outcome.DUPLICATE,
)


def payment_lost_notify_check(*, out_trade_no: str) -> bool:
    """Ask every enabled gateway about this order's trade; honour a paid one.

    True when a gateway's paid trade now stands recorded against the order
    (this call applied it, or it was recorded already). A gateway that cannot
    be reached, or answers nothing paid, leaves the order as it was.
    Network calls: call outside any transaction.
    Idempotent: on (gateway, trade_no), as notifies are.
    """
    return any(
        payment_query_honour(gateway=gateway, out_trade_no=out_trade_no)
        for gateway in gateways_all()
    )


def payment_query_honour(*, gateway: Gateway, out_trade_no: str) -> bool:
    """Ask one gateway about this order's trade; honour it when paid.

    What the sweep does for each gateway, and the order page for the one its
    shopper comes back from (orders/services/payment_return.py). True when the
    gateway's paid trade now stands recorded against the order. A gateway that
    cannot be reached (a warning in the log) or answers nothing paid leaves the
    order as it was. A network call: call outside any transaction.
    """
    try:
        trade = gateway.query(out_trade_no=out_trade_no)
    except (DomainError, httpx.HTTPError):
        logger.warning(
            "could not query %s for %s", gateway.name, out_trade_no, exc_info=True
        )
        return False
    if trade is None or trade.status != "success":
        return False
    if trade.out_trade_no != out_trade_no:
        logger.error(
            "%s answered a query for %s with trade %s of %s",
            gateway.name,
            out_trade_no,
            trade.trade_no,
            trade.out_trade_no,
        )
        return False
    result = payment_query_apply(gateway_name=gateway.name, parsed=trade)
    if result.outcome not in _PAID_OUTCOMES:
        return False
    logger.info(
        "%s trade %s of %s found paid by query: %s",
        gateway.name,
        trade.trade_no,
        out_trade_no,
        result.outcome,
    )
    return True


def payment_lost_notify_sweep(
    *, now: dt.datetime | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Look up the trades of pending orders about to expire; returns how many were paid.

    The orders expiring within LOST_AHEAD, or expired within LOST_BEHIND and
    not yet cancelled, soonest first.
    """
    now = now or timezone.now()
    numbers = list(
        Order.objects.filter(
            status=Order.Status.PENDING,
            expires_at__gte=now - LOST_BEHIND,
            expires_at__lte=now + LOST_AHEAD,
        )
        .order_by("expires_at")
        .values_list("number", flat=True)[:limit]
    )
    return sum(payment_lost_notify_check(out_trade_no=number) for number in numbers)
