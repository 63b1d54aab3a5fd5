"""The order email outbox: written with the order, sent by Celery, swept by beat.

An email is a row first (in the order's transaction), then a task. If the broker
is down when the task is queued, the row stays `pending` and the periodic flush
sends it: nothing is lost, and the unique (order, kind) key means nothing is
sent twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from config.lib.db import row_insert_once
from config.lib.tasks import enqueue_or_leave_for_sweep
from orders.guest import access_url as guest_access_url
from orders.models import Order, OrderEmail, OrderEvent, ProblemReport, Refund

logger = logging.getLogger(__name__)

FLUSH_AFTER = dt.timedelta(minutes=1)  # give the queued task a head start
STALE_SENDING = dt.timedelta(minutes=10)  # a worker died between claim and send
MAX_ATTEMPTS = 8

_TEMPLATES = {
    OrderEmail.Kind.DELIVERED: "emails/order_delivered",
    OrderEmail.Kind.REFUNDED: "emails/order_refunded",
    OrderEmail.Kind.PROBLEM_ANSWERED: "emails/problem_answered",
}


def order_email_queue(
    *,
    order: Order,
    kind: str,
    refund: Refund | None = None,
    report: ProblemReport | None = None,
    language: str = "",
) -> OrderEmail | None:
    """Write the outbox row and queue its task after commit; None when it was written before.

    Idempotent per (order, kind), or per refund for refund emails: one email per
    refund (the unique keys say so; a second call writes nothing, in one statement),
    and one per problem report for its answer. `language`: the shopper's ("": the
    site's default).
    """
    email = order_email_row(order=order, kind=kind, refund=refund)
    if email is not None:
        email.report, email.language = report, language[:10]
    if email is None or not row_insert_once(email):
        return None
    order_email_written(email)
    return email


def order_email_row(
    *, order: Order, kind: str, refund: Refund | None = None
) -> OrderEmail | None:
    """The outbox row to write (`order_email_queue`, or a caller that writes it
    with other rows: then `order_email_written`); None without an address."""
    if not order.email:
        return None
    return OrderEmail(order=order, kind=kind, refund=refund, to=order.email)


def order_email_written(email: OrderEmail) -> None:
    """The row is written (in the caller's transaction): queue its task after commit."""
    transaction.on_commit(partial(order_email_dispatch, email_id=email.id))


def order_email_dispatch(*, email_id: int) -> bool:
    """Hand the email to Celery; a broker that is down leaves it for the flush.

    The task carries the time it was queued and the worker records it when it
    claims the email (`queued_at`): no UPDATE here, after the notify's commit.
    """
    from orders.tasks import order_email_send_task

    return enqueue_or_leave_for_sweep(
        order_email_send_task,
        email_id=email_id,
        queued_at=timezone.now().isoformat(),
    )


def order_email_send(*, email_id: int, queued_at: dt.datetime | None = None) -> bool:
    """Send one outbox email. Returns False when someone else sent or is sending it.

    Claim idiom: pending → sending with a conditional UPDATE; only the claimer sends.
    `queued_at`: when its task was queued (recorded with the first claim); None
    when the flush sends it.
    Raises: whatever the mail backend raises (the task retries); the row goes back
    to pending with the error noted.
    """
    now = timezone.now()
    queued: dict[str, Any] = (
        {"queued_at": Coalesce("queued_at", Value(queued_at))} if queued_at else {}
    )
    claimed = OrderEmail.objects.filter(
        Q(status=OrderEmail.Status.PENDING)
        | Q(status=OrderEmail.Status.SENDING, claimed_at__lte=now - STALE_SENDING),
        id=email_id,
    ).update(
        status=OrderEmail.Status.SENDING,
        claimed_at=now,
        attempts=F("attempts") + 1,
        **queued,
    )
    if claimed != 1:
        return False
    email = OrderEmail.objects.select_related("order", "refund", "report__line").get(
        id=email_id
    )
    try:
        _send(email)
    except Exception as exc:
        status = (
            OrderEmail.Status.FAILED
            if email.attempts >= MAX_ATTEMPTS
            else OrderEmail.Status.PENDING
        )
        OrderEmail.objects.filter(id=email_id).update(
            status=status, last_error=f"{type(exc).__name__}: {exc}"[:200]
        )
        raise
    OrderEmail.objects.filter(id=email_id).update(
        status=OrderEmail.Status.SENT, sent_at=timezone.now()
    )
    OrderEvent.objects.create(
        order=email.order, kind=OrderEvent.Kind.EMAIL_SENT, detail={"kind": email.kind}
    )
    return True


def order_email_flush(*, now: dt.datetime | None = None) -> int:
    """Send what is still unsent a while after it was written; returns how many were sent."""
    now = now or timezone.now()
    ids = list(
        OrderEmail.objects.filter(
            Q(status=OrderEmail.Status.PENDING, created_at__lte=now - FLUSH_AFTER)
            | Q(status=OrderEmail.Status.SENDING, claimed_at__lte=now - STALE_SENDING)
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:200]
    )
    sent = 0
    for email_id in ids:
        try:
            sent += order_email_send(email_id=email_id)
        except Exception:
            logger.warning(
                "order email %s failed again; will retry", email_id, exc_info=True
            )
    return sent


def _send(email: OrderEmail) -> None:
    order = email.order
    # The link to the order, never the code itself.
    context = {
        "order": order,
        "refund": email.refund,
        "report": email.report,
        "refund_lines": list(email.refund.lines.select_related("line"))
        if email.refund
        else [],
        "lines": [line for line in order.lines.all() if line.parent_id is None],
        # A guest order's: its access link (orders/guest.py), no login needed.
        "order_url": guest_access_url(order)
        if order.is_guest
        else settings.SITE_URL + reverse("orders:order-detail", args=[order.number]),
    }
    template = _TEMPLATES[OrderEmail.Kind(email.kind)]
    with translation.override(email.language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"{template}_subject.txt", context).strip()
        text = render_to_string(f"{template}.txt", context)
        html = render_to_string(f"{template}.html", context)
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [email.to]
    )
    message.attach_alternative(html, "text/html")
    message.send()
