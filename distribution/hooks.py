"""Commissions follow the order side: receivers of orders' in-transaction signals.

orders never imports distribution. It tells (orders/signals.py) when lines
become delivered (`orders/transitions.py` `lines_move`, the one place lines
move) and when a refund takes money out of lines (`refund_request`, the one
place a line's refunded amount grows); the receivers here call the ledger's
hooks in the *same* transaction, with the Order row already locked by the
sender (docs/DECISIONS.md, "Commissions in the delivering transaction"):

- A crash can never commit a delivered line of a credited order without its
  pending earns, nor a refund without its clawback: they commit together.
- A bug in the ledger must not cost a shopper their codes or their refund: each
  hook runs in a savepoint; a failure rolls back only the commission writes and
  is logged at ERROR. `commissions_catch_up` (manage.py commissions_catch_up)
  writes whatever such a failure left out; both hooks are idempotent, so running
  it is always safe, and `reconcile_commissions` lists a missing clawback.

Cost on the paid path: nothing for an order that is not `partnered` (every
credited order is: `order_attribute`, and `partnered_mark` for rows written
through the ORM); one SELECT per delivering transaction otherwise (is the order
credited to a reseller?), or when the sender does not say.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog.models import Sku
from config.lib.db import rows_get
from distribution.models import CommissionEntry, OrderAttribution
from distribution.services import (
    commission_on_line_delivered,
    commission_on_line_refunded,
)
from orders.locks import order_lock_for_update_by_id
from orders.models import OrderLine
from orders.services.partnered import order_partnered_mark

logger = logging.getLogger(__name__)

CATCH_UP_DAYS = 14  # a week's settlement window and then some


def _isolated(hook: Callable[..., object], **kwargs: Any) -> bool:
    """Run one ledger hook in a savepoint; a failure is logged, not raised."""
    try:
        with transaction.atomic():
            hook(**kwargs)
    except Exception:
        # The order side goes on (codes delivered, money refunded); the catch-up
        # writes what is missing once the cause is fixed.
        logger.exception(
            "commission hook %s failed for line %s; run commissions_catch_up",
            hook.__name__,
            kwargs.get("order_line_id"),
        )
        return False
    return True


def on_lines_delivered(
    sender: object, *, lines: Sequence[OrderLine], now: dt.datetime, **kwargs: Any
) -> None:
    """Pending earns for delivered lines of credited orders (bundle lines carry no money)."""
    leaves = [line for line in lines if not line.is_bundle]
    if not leaves or kwargs.get("partnered") is False:
        return  # no reseller is credited with an order that is not partnered
    # Plain SQL (config/lib/db.py): this runs on every paid order, most of them
    # credited to no one, and the ORM query cost ~900 Python calls to build.
    credited = {
        a.order_id
        for a in rows_get(
            OrderAttribution, order=list({line.order_id for line in leaves})
        )
    }
    for line in leaves:
        if line.order_id in credited:
            _isolated(commission_on_line_delivered, order_line_id=line.pk, now=now)


def on_partner_row_saved(
    sender: object, *, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """post_save of OrderAttribution and PartnerOrder: their order is `partnered`.

    For rows written through the ORM (the admin, scripts); the services that
    write them in plain SQL mark the order themselves. Loading fixtures (`raw`)
    marks nothing: the fixture's order row says.
    """
    if created and not raw:
        order_partnered_mark(order_id=instance.order_id)


def on_lines_refunded(
    sender: object,
    *,
    refunds: Sequence[tuple[OrderLine, Decimal]],
    now: dt.datetime,
    **kwargs: Any,
) -> None:
    """Claw back what refunded parts of lines no longer earn (lines with earns only)."""
    earning = set(
        CommissionEntry.objects.filter(
            order_line_id__in=[line.pk for line, amount in refunds if amount > 0],
            kind=CommissionEntry.Kind.EARN,
        ).values_list("order_line_id", flat=True)
    )
    for line, amount in refunds:
        if line.pk in earning:
            _isolated(
                commission_on_line_refunded,
                order_line_id=line.pk,
                refunded_amount=amount,
                now=now,
            )


def commissions_catch_up(
    *, since: dt.datetime | None = None, now: dt.datetime | None = None
) -> int:
    """Write the commission a failed hook left out; returns the lines looked at.

    1. Delivered lines (since `since`, default CATCH_UP_DAYS ago) of credited
       orders without any earn: the delivery hook again.
    2. Lines with earns and a refunded amount: the refund hook again, for the
       line's whole refunded amount (it claws back only what is still owed).
    Each line under its Order row lock, in a transaction of its own.
    Locks: Order, then CommissionEntry (as the order side's own transactions).
    Idempotent: both hooks are; a clean ledger is left as it is.
    """
    now = now or timezone.now()
    since = since or now - dt.timedelta(days=CATCH_UP_DAYS)
    earns = CommissionEntry.objects.filter(
        order_line_id=OuterRef("pk"), kind=CommissionEntry.Kind.EARN
    )
    credited = OrderAttribution.objects.filter(order_id=OuterRef("order_id"))
    unearned = list(
        OrderLine.objects.filter(
            Exists(credited),
            ~Exists(earns),
            status=OrderLine.Status.DELIVERED,
            delivered_at__gte=since,
        )
        .exclude(delivery=Sku.Delivery.BUNDLE)
        .values_list("pk", "order_id", "delivered_at")
    )
    refunded = list(
        OrderLine.objects.filter(
            Exists(earns), refunded_amount__gt=0, updated_at__gte=since
        ).values_list("pk", "order_id")
    )
    for line_id, order_id, delivered_at in unearned:
        try:
            with transaction.atomic():
                order_lock_for_update_by_id(order_id=order_id)
                # Pending from the delivery, as the hook would have written it.
                commission_on_line_delivered(
                    order_line_id=line_id, now=delivered_at or now
                )
        except Exception:  # one bad line must not stall the lines after it
            logger.exception("commission catch-up failed for line %s", line_id)
    for line_id, order_id in refunded:
        try:
            with transaction.atomic():
                order_lock_for_update_by_id(order_id=order_id)
                line = OrderLine.objects.get(pk=line_id)
                commission_on_line_refunded(
                    order_line_id=line_id, refunded_amount=line.refunded_amount, now=now
                )
        except Exception:
            logger.exception("commission clawback catch-up failed for line %s", line_id)
    return len(unearned) + len(refunded)
