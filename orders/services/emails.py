"""The order email outbox: written with the order, sent by Celery, swept by beat.

An email is a row first (in the order's transaction), then a drain. After the
commit, `order_email_dispatch` publishes one "drain the outbox" task per
`DRAIN_WINDOW_MS` at most (a Redis `SET NX PX` gate); the task runs after the
gate has closed and sends every fresh pending email, so a burst of paid orders
costs one Celery publish, not one each, and a lone order's email leaves within
about a second. If the broker is down when the drain is queued, the rows stay
`pending` and the periodic flush sends them: nothing is lost. Each row is
claimed with a conditional UPDATE before it is sent, so drains that overlap, a
redelivered task and the flush never send one twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from config.celery import app as celery_app
from config.lib.db import row_insert_once
from config.lib.ratelimitcache import CACHE_ERRORS
from config.lib.tasks import enqueue_or_leave_for_sweep
from orders.guest import access_url as guest_access_url
from orders.models import Order, OrderEmail, OrderEvent, ProblemReport, Refund

logger = logging.getLogger(__name__)

FLUSH_AFTER = dt.timedelta(minutes=1)  # give the queued task a head start
STALE_SENDING = dt.timedelta(minutes=10)  # a worker died between claim and send
MAX_ATTEMPTS = 8
# One drain task is published per window at most; it runs once the window is
# over (DRAIN_DELAY > DRAIN_WINDOW), so an email whose dispatch found the gate
# shut was committed before that drain reads the outbox.
DRAIN_WINDOW_MS = 1000
DRAIN_DELAY = 1.1  # seconds
DRAIN_MARGIN_MS = 50
DRAIN_GATE_KEY = "orders:email-drain-gate"
DRAIN_BATCH = 200
DRAIN_SECONDS = (
    20.0  # then hand over to another drain, well inside the task's time limit
)

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
    if not order.email:
        return None
    email = OrderEmail(
        order=order,
        kind=kind,
        refund=refund,
        to=order.email,
        report=report,
        language=language[:10],
    )
    if not row_insert_once(email):
        return None
    order_email_written()
    return email


def order_email_row(*, order: Order, kind: str) -> dict[str, Any] | None:
    """The outbox row of an order email, as {attname: value}, for a caller that
    writes it with other rows (config/lib/db_fold.py `insert_write_rows`, `once`),
    then calls `order_email_written`; None without an address."""
    if not order.email:
        return None
    return {"order_id": order.pk, "kind": kind, "to": order.email}


def order_email_written() -> None:
    """A row is written (in the caller's transaction): wake the drain after commit."""
    transaction.on_commit(order_email_dispatch)


def order_email_dispatch() -> bool:
    """Make sure a drain of the outbox is on its way; False when the broker is down.

    1. The gate: shut (a drain published in this window runs after it, so after
       our commit), nothing to publish. This process remembers until when a
       gate it saw is shut, and asks Redis again only after that.
    2. Opened by us: publish the drain, to run in DRAIN_DELAY. A broker that is
       down leaves the rows to the flush; a gate that cannot be read (Redis
       down) publishes anyway. Eager tasks (tests) run at once: no gate.
    """
    if not celery_app.conf.task_always_eager and not _gate_opened():
        return True
    from orders.tasks import order_email_drain_task

    return enqueue_or_leave_for_sweep(
        order_email_drain_task,
        countdown=DRAIN_DELAY,
        queued_at=timezone.now().isoformat(),
    )


class _Gate:
    # The end (epoch ms) of the last window this process saw shut; a window is
    # trusted until DRAIN_MARGIN_MS before it ends, for clocks a little apart.
    shut_until_ms = 0.0


def _gate_opened() -> bool:
    """Whether this call opened a window (True when Redis cannot be asked).

    One `SET key <end> NX PX DRAIN_WINDOW_MS GET`: the key holds the window's
    end, so a process that finds it shut learns until when, and skips Redis
    until then.
    """
    now_ms = time.time() * 1000
    if now_ms < _Gate.shut_until_ms - DRAIN_MARGIN_MS:
        return False
    backend = caches["default"]
    end_ms = now_ms + DRAIN_WINDOW_MS
    if not isinstance(backend, RedisCache):  # no Redis (`make run`): Django's ADD
        opened = bool(backend.add(DRAIN_GATE_KEY, end_ms, timeout=1))
        _Gate.shut_until_ms = end_ms if opened else 0.0
        return opened
    try:
        client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        previous = client.set(
            backend.make_key(DRAIN_GATE_KEY),
            end_ms,
            nx=True,
            px=DRAIN_WINDOW_MS,
            get=True,
        )
    except CACHE_ERRORS:
        logger.warning("email drain gate unreadable; publishing", exc_info=True)
        return True
    _Gate.shut_until_ms = end_ms if previous is None else float(previous)
    return previous is None


def order_email_drain(*, queued_at: dt.datetime | None = None) -> int:
    """Send the outbox's fresh emails (pending, never tried); returns how many were sent.

    Each is claimed and sent by `order_email_send` (a conditional UPDATE: a row
    another drain or the flush took is skipped). One that fails goes back to
    pending with its attempt counted, and is retried by the flush (with the
    flush's delay, not at every drain). A full batch, or one that took longer
    than DRAIN_SECONDS (a slow mail server), hands what is left to another drain.
    `queued_at`: when the drain was published; an email written after that is
    recorded as queued when it was written (it was covered by this drain then).
    Idempotent: a redelivered drain finds nothing pending, or sends what is left.
    """
    rows = list(
        OrderEmail.objects.filter(status=OrderEmail.Status.PENDING, attempts=0)
        .order_by("created_at")
        .values_list("id", "created_at")[:DRAIN_BATCH]
    )
    sent = 0
    deadline = time.monotonic() + DRAIN_SECONDS
    for email_id, created_at in rows:
        if time.monotonic() > deadline:
            break
        try:
            sent += order_email_send(
                email_id=email_id,
                queued_at=max(queued_at, created_at) if queued_at else None,
            )
        except Exception:
            logger.warning(
                "order email %s failed; left to the flush", email_id, exc_info=True
            )
    if len(rows) == DRAIN_BATCH or time.monotonic() > deadline:
        order_email_dispatch()
    return sent


def order_email_send(*, email_id: int, queued_at: dt.datetime | None = None) -> bool:
    """Send one outbox email. Returns False when someone else sent or is sending it.

    Claim idiom: pending → sending with a conditional UPDATE; only the claimer sends.
    `queued_at`: when a drain task covered it (recorded with the first claim);
    None when the flush sends it.
    Raises: whatever the mail backend raises (the drain leaves the row to the
    flush); the row goes back to pending with the error noted.
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
