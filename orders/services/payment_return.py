"""A shopper back on the order page from a gateway's cashier (`?paying=<gateway>`).

Alipay's return_url and WeChat Pay's H5 redirect_url bring the shopper back to
the order page, marked (orders/views.py), often before the gateway's notify
and sometimes instead of it. The page then asks that gateway once about the
order's trade and honours a paid one as the lost-notify sweep does
(`payment_query_honour`); until the order is paid it says "payment being
confirmed" and polls itself, for RETURN_CONFIRM_FOR after the first return.

The marker is the shopper's word, never trusted: it only chooses which enabled
gateway is asked about a pending order of theirs, at most once every
RETURN_QUERY_EVERY per order; an unknown name is ignored.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from django.core.cache import cache
from django.utils import timezone

from config.lib.ratelimitcache import CACHE_ERRORS
from orders.gateways import gateway_get
from orders.models import Order
from orders.services.notify_sweep import payment_query_honour

logger = logging.getLogger(__name__)

# At most one gateway query per order this often (seconds), whoever asks.
RETURN_QUERY_EVERY = 5
# How long after the first return the page says "confirming" and polls (seconds).
RETURN_CONFIRM_FOR = 120

ReturnCheck = Literal["paid", "confirming", "ignored"]


def payment_return_check(*, order: Order, gateway_name: str) -> ReturnCheck:
    """The order page opened with `?paying=<gateway_name>`.

    `paid`: the gateway's paid trade now stands recorded (reload the order);
    `confirming`: still pending within RETURN_CONFIRM_FOR of the first return,
    show the banner and poll; `ignored`: not a pending order, an unknown
    gateway, the window over, or the cache down (the plain page).
    A gateway that says "not paid" or cannot be reached changes nothing (a
    warning in the log). A network call: call outside any transaction.
    """
    if order.status != Order.Status.PENDING:
        return "ignored"
    gateway = gateway_get(gateway_name) if gateway_name.isidentifier() else None
    if gateway is None:
        return "ignored"
    now = time.time()
    remaining = (order.expires_at - timezone.now()).total_seconds()
    since_key = f"orders:paying-since:{order.number}"
    try:
        # The window's start outlives it until the order expires: a page
        # refreshing itself never opens a second window.
        cache.add(since_key, now, timeout=int(max(remaining, RETURN_CONFIRM_FOR)) + 60)
        since = cache.get(since_key)
        if since is None or now - float(since) > RETURN_CONFIRM_FOR:
            return "ignored"
        ask = cache.add(
            f"orders:paying-query:{order.number}", 1, timeout=RETURN_QUERY_EVERY
        )
    except CACHE_ERRORS:
        # Without the cache nothing bounds the queries: the plain page.
        logger.warning("order %s return not checked: cache unavailable", order.number)
        return "ignored"
    if ask and payment_query_honour(gateway=gateway, out_trade_no=order.number):
        return "paid"
    return "confirming"
