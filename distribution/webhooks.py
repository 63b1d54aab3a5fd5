"""Partner webhooks (SPEC §4.4): a partner's order reached a terminal state.

1. orders sends `order_status_changed` after commit (orders/signals.py); the
   receiver (connected in distribution/apps.py) calls `webhook_enqueue` for
   delivered, refunded and partially_refunded.
2. `webhook_enqueue` snapshots the order as GET shows it (its codes revealed to
   the partner and audited), seals the body with the vault (it holds card codes)
   and writes one WebhookDelivery per (order, event); the task is queued.
3. `webhook_deliver` claims a due delivery (one conditional UPDATE), POSTs the
   same bytes signed with a fresh X-Timestamp outside any transaction, then
   records the attempt: 2xx delivers; anything else, or a network error, waits
   WEBHOOK_RETRY_BASE_SECONDS × 2^(n−1) (at most an hour) until a day has passed.
4. `webhook_sweep` (every minute) queues deliveries that are due, and those
   whose worker died mid-attempt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from config.lib.db import row_get, row_insert_once
from config.lib.http import http_request
from config.lib.tasks import BROKER_ERRORS, enqueue_or_leave_for_sweep
from distribution.models import (
    PartnerAccount,
    PartnerOrder,
    WebhookAttempt,
    WebhookDelivery,
)
from distribution.partners import signing
from distribution.partners.replies import partner_order_reply
from fulfillment import vault
from orders.models import Order

logger = logging.getLogger(__name__)

DS = WebhookDelivery.Status
TERMINAL = frozenset(
    {Order.Status.DELIVERED, Order.Status.REFUNDED, Order.Status.PARTIALLY_REFUNDED}
)
RETRY_FOR = dt.timedelta(days=1)
RETRY_MAX_DELAY = 3600  # seconds between two attempts, at most
LEASE = dt.timedelta(minutes=2)  # a claimed attempt older than this was lost
TIMEOUT_SECONDS = 10.0
SWEEP_BATCH = 200


def on_order_status_changed(
    sender: Any, *, order_id: int, status: str, **kwargs: Any
) -> None:
    """Receiver of orders.signals.order_status_changed (after commit).

    An order not `partnered` is no partner's (distribution/partners/orders.py
    places every partner order partnered): nothing to look up.
    """
    if status in TERMINAL and kwargs.get("partnered") is not False:
        webhook_enqueue(order_id=order_id, status=status)


def webhook_secret_set(*, account: PartnerAccount, secret: str) -> None:
    """Seal and store the secret the partner's webhooks are signed with."""
    ciphertext, key_id = vault.seal_secret(secret)
    PartnerAccount.objects.filter(pk=account.pk).update(
        webhook_secret_ciphertext=ciphertext, webhook_secret_key_id=key_id
    )
    account.webhook_secret_ciphertext = ciphertext
    account.webhook_secret_key_id = key_id


def webhook_enqueue(
    *, order_id: int, status: str, now: dt.datetime | None = None
) -> WebhookDelivery | None:
    """Record the `order.<status>` event of a partner's order and queue its delivery.

    None for an order that is no partner's, or a partner without a webhook URL
    or secret. Idempotent: one delivery per (order, event).
    """
    now = now or timezone.now()
    # Most orders are no partner's: one plain statement says so (this runs after
    # every paid order; the ORM query below costs ~3,900 Python calls to build).
    if row_get(PartnerOrder, order=order_id) is None:
        return None
    partner_order = (
        PartnerOrder.objects.select_related("account__reseller__user")
        .filter(order_id=order_id)
        .first()
    )
    if partner_order is None:
        return None
    account = partner_order.account
    if not (account.webhook_url and account.webhook_secret_ciphertext):
        return None
    event = f"order.{status}"
    if WebhookDelivery.objects.filter(order_id=order_id, event=event).exists():
        return None
    reply = partner_order_reply(partner_order=partner_order, user=account.reseller.user)
    body = json.dumps(
        {"event": event, "order": reply}, ensure_ascii=False, separators=(",", ":")
    )
    ciphertext, key_id = vault.seal_secret(body)
    delivery = WebhookDelivery(
        account=account,
        order_id=order_id,
        event=event,
        body_ciphertext=ciphertext,
        body_key_id=key_id,
        next_attempt_at=now,
        give_up_at=now + RETRY_FOR,
    )
    if not row_insert_once(delivery, unique=("order", "event")):
        return None
    transaction.on_commit(partial(_dispatch, delivery.pk))
    return delivery


def _dispatch(delivery_id: int, countdown: int | None = None) -> None:
    from distribution.tasks import webhook_deliver_task

    if countdown:
        try:
            webhook_deliver_task.apply_async(
                kwargs={"delivery_id": delivery_id}, countdown=countdown
            )
        except BROKER_ERRORS:
            logger.warning("webhook %s left for the sweep", delivery_id)
        return
    enqueue_or_leave_for_sweep(webhook_deliver_task, delivery_id=delivery_id)


@dataclass(frozen=True)
class Attempted:
    """What one `webhook_deliver` did: delivered, or when to try again (None: never)."""

    claimed: bool
    delivered: bool = False
    retry_in: int | None = None


def retry_delay(attempts: int) -> int:
    """Seconds to wait after the n-th failed attempt: doubling, at most an hour."""
    base = max(1, settings.WEBHOOK_RETRY_BASE_SECONDS)
    return int(min(base * 2 ** min(attempts - 1, 20), RETRY_MAX_DELAY))


def webhook_deliver(*, delivery_id: int, now: dt.datetime | None = None) -> Attempted:
    """POST one due delivery once and record the attempt.

    1. Claim: pending and due (or sending with a lost lease) → sending, one
       conditional UPDATE; a delivery another worker holds, or not yet due, is
       left alone.
    2. POST outside any transaction, timed; 2xx is success.
    3. Record the attempt; the delivery is delivered, or pending again with its
       next time, or failed once the next time would pass a day.
    Idempotent: a delivered or failed delivery is never sent again.
    """
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(
        Q(status=DS.PENDING, next_attempt_at__lte=now)
        | Q(status=DS.SENDING, claimed_at__lt=now - LEASE),
        pk=delivery_id,
    ).update(status=DS.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return Attempted(claimed=False)
    delivery = WebhookDelivery.objects.select_related("account").get(pk=delivery_id)
    url = delivery.account.webhook_url
    code, error, elapsed = _post(delivery, url)
    succeeded = code is not None and 200 <= code < 300
    finished = now + dt.timedelta(milliseconds=elapsed)
    retry_in = None if succeeded else retry_delay(delivery.attempts)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            url=url[:300],
            succeeded=succeeded,
            response_code=code,
            duration_ms=elapsed,
            error=error[:200],
        )
        if succeeded:
            fields: dict[str, Any] = {"status": DS.DELIVERED, "delivered_at": finished}
        elif (
            retry_in is not None
            and finished + dt.timedelta(seconds=retry_in) <= delivery.give_up_at
        ):
            fields = {
                "status": DS.PENDING,
                "next_attempt_at": finished + dt.timedelta(seconds=retry_in),
            }
        else:
            fields, retry_in = {"status": DS.FAILED, "next_attempt_at": None}, None
            logger.warning("webhook %s gave up after a day", delivery.pk)
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DS.SENDING).update(
            **fields
        )
    return Attempted(claimed=True, delivered=succeeded, retry_in=retry_in)


def _post(delivery: WebhookDelivery, url: str) -> tuple[int | None, str, int]:
    """(status code or None, error text, milliseconds) of one signed POST."""
    started = time.monotonic()
    code: int | None = None
    error = ""
    try:
        body = vault.open_secret(
            ciphertext=delivery.body_ciphertext, key_id=delivery.body_key_id
        ).encode()
        secret = vault.open_secret(
            ciphertext=delivery.account.webhook_secret_ciphertext,
            key_id=delivery.account.webhook_secret_key_id,
        )
        timestamp = str(int(time.time()))
        response = http_request(
            "POST",
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Timestamp": timestamp,
                "X-Signature": signing.webhook_sign(
                    secret=secret, timestamp=timestamp, body=body
                ),
            },
            timeout=TIMEOUT_SECONDS,
        )
        code = response.status_code
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except (httpx.HTTPError, vault.VaultError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    elapsed = int((time.monotonic() - started) * 1000)
    return code, error, elapsed


def webhook_sweep(*, now: dt.datetime | None = None) -> int:
    """Queue deliveries that are due or whose attempt was lost; returns how many."""
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(
            Q(status=DS.PENDING, next_attempt_at__lte=now)
            | Q(status=DS.SENDING, claimed_at__lt=now - LEASE)
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    for delivery_id in ids:
        _dispatch(delivery_id)
    return len(ids)


def webhook_retry_later(*, delivery_id: int, countdown: int) -> None:
    """Queue the next attempt (the task calls this after a failure)."""
    _dispatch(delivery_id, countdown=countdown)


def webhook_delivery_list_for_reseller(
    *, reseller_id: int
) -> QuerySet[WebhookDelivery]:
    """A partner's webhook deliveries with their attempts, newest first (dashboard).

    With each order's `out_trade_no` (order.partner_order); the sealed body (it
    holds card codes) is never loaded.
    """
    return (
        WebhookDelivery.objects.filter(account__reseller_id=reseller_id)
        .select_related("order__partner_order")
        .defer("body_ciphertext")
        .prefetch_related("attempt_rows")
        .order_by("-created_at", "-id")
    )
