"""Operator alerts: low stock, and orders waiting on a human, as daily digests.

A periodic task (config/celery.py) runs `operator_alerts_check`. For each kind
it writes the alerts it has not written today (the (kind, SKU, day) unique key
answers, so a rerun or a second beat worker writes nothing) and, with them, one
digest email: an outbox row sent by Celery after commit, retried by the task
and by the next check. Sending happens outside every transaction and touches
no order, refund or top-up row: a mail server that is down delays an alert,
never an order. A digest that keeps failing ends `failed`, with its error, in
the admin (orders/alerts_admin.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from config.lib.db import row_insert_once
from config.lib.tasks import enqueue_or_leave_for_sweep
from config.roles import OPERATORS
from fulfillment.models import TopUp
from orders import alerts_selectors as selectors
from orders.models import (
    OperatorAlert,
    OperatorAlertEmail,
    OperatorAlertKind,
    ProblemReport,
    Refund,
)

logger = logging.getLogger(__name__)

Kind = OperatorAlertKind
Item = dict[str, Any]

DIGEST_MAX_ITEMS = 50  # listed in one email; the admin link shows the rest
FLUSH_AFTER = dt.timedelta(minutes=1)  # give the queued task a head start
STALE_SENDING = dt.timedelta(minutes=10)  # a worker died between claim and send
MAX_ATTEMPTS = 8
# The flush sends inline in the beat task: stop well inside the task's soft time
# limit (30 s) when the mail server is slow; the rest waits for the next run.
FLUSH_BUDGET_SECONDS = 15.0

INTROS = {
    Kind.LOW_STOCK: gettext_lazy(
        "以下卡密 SKU 的可售库存已低于阈值，请及时补货。每个 SKU 每天最多提醒一次。"
    ),
    Kind.REVIEW: gettext_lazy("以下订单已付款，被风控规则拦下，正在等待人工审核。"),
    Kind.REFUND_FAILED: gettext_lazy(
        "以下退款被支付渠道拒绝，或提交给渠道超过一天仍未到账：顾客的钱还没有退回，请检查后处理。"
    ),
    Kind.PROBLEM_OPEN: gettext_lazy("以下顾客的问题反馈还没有人处理。"),
    Kind.TOPUP_ATTENTION: gettext_lazy(
        "以下直充需要人工处理：已被标记，或超过到账期限仍未完成。"
    ),
}
# The admin list each digest links to ("see them all").
LIST_LINKS = {
    Kind.LOW_STOCK: ("admin:catalog_sku_changelist", "?delivery__exact=card_code"),
    Kind.REVIEW: ("admin:orders_order_changelist", "?review=waiting"),
    Kind.REFUND_FAILED: ("admin:orders_refund_changelist", "?status__exact=failed"),
    Kind.PROBLEM_OPEN: (
        "admin:orders_problemreport_changelist",
        "?status__exact=open",
    ),
    Kind.TOPUP_ATTENTION: ("admin:fulfillment_topup_changelist", "?human=yes"),
}


def operator_alert_recipients() -> list[str]:
    """OPERATOR_ALERT_EMAILS when set, else every active Operator with an email."""
    if settings.OPERATOR_ALERT_EMAILS:
        return list(dict.fromkeys(settings.OPERATOR_ALERT_EMAILS))
    emails = (
        User.objects.filter(groups__name=OPERATORS, is_active=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )
    return list(dict.fromkeys(emails))


def operator_alerts_check(*, now: dt.datetime | None = None) -> int:
    """Write today's new alerts as one digest per kind; returns how many digests.

    1. Recipients: none configured → nothing is written (logged), so alerts
       are not spent on nobody.
    2. Low stock: SKUs below their threshold not alerted today → one digest.
    3. From OPERATOR_DIGEST_HOUR (local time) on: for each "waiting on a human"
       kind with something waiting and no digest today → one digest.
    4. Sweep digests whose task was lost (broker down) or whose send failed.
    Idempotent: per (kind, SKU, day) by the unique key, in the same statement;
    a concurrent run blocks on the other's uncommitted alert and then skips it.
    Locks: none beyond the rows it inserts (nothing is read FOR UPDATE).
    """
    now = now or timezone.now()
    day = timezone.localdate(now)
    written = 0
    recipients = operator_alert_recipients()
    if not recipients:
        logger.warning("operator alerts: no recipients (OPERATOR_ALERT_EMAILS)")
    else:
        written += _low_stock_digest(now=now, day=day, to=recipients)
        if timezone.localtime(now).hour >= settings.OPERATOR_DIGEST_HOUR:
            for kind, build in _WAITING.items():
                written += _waiting_digest(
                    kind=kind, build=partial(build, now), day=day, to=recipients
                )
    operator_alert_flush(now=now)
    return written


def _low_stock_digest(*, now: dt.datetime, day: dt.date, to: list[str]) -> int:
    low = selectors.low_stock_list(now=now, day=day)
    if not low:
        return 0
    items = {
        row.sku.id: {
            "sku_id": row.sku.id,
            "code": row.sku.code,
            "name": f"{row.sku.product.name} {row.sku.name}",
            "available": row.available,
            "threshold": row.threshold,
        }
        for row in low
    }
    with transaction.atomic():
        alerts = [
            OperatorAlert(kind=Kind.LOW_STOCK, sku_id=sku_id, day=day)
            for sku_id in items
        ]
        # In SKU id order (the selector's), so two racing runs wait on each
        # other's rows in one order and never deadlock. Only the SKUs this run
        # alerted go in its digest: another worker's are in the other's.
        mine = [a for a in alerts if row_insert_once(a)]
        if not mine:
            return 0
        listed = [items[a.sku_id] for a in mine if a.sku_id is not None]
        _email_write(
            kind=Kind.LOW_STOCK,
            day=day,
            to=to,
            alerts=mine,
            items=listed[:DIGEST_MAX_ITEMS],
            total=len(listed),
        )
    return 1


def _waiting_digest(
    *,
    kind: str,
    build: Callable[[], tuple[list[Item], int]],
    day: dt.date,
    to: list[str],
) -> int:
    if OperatorAlert.objects.filter(kind=kind, sku=None, day=day).exists():
        return 0  # the usual case after the first run of the day: no listing
    items, total = build()
    if not total:
        return 0
    with transaction.atomic():
        alert = OperatorAlert(kind=kind, sku=None, day=day)
        if not row_insert_once(alert):
            return 0
        _email_write(
            kind=kind, day=day, to=to, alerts=[alert], items=items, total=total
        )
    return 1


def _email_write(
    *,
    kind: str,
    day: dt.date,
    to: list[str],
    alerts: list[OperatorAlert],
    items: list[Item],
    total: int,
) -> OperatorAlertEmail:
    """The digest row for `alerts` (in the caller's transaction), queued after commit."""
    email = OperatorAlertEmail(
        kind=kind,
        day=day,
        to=to,
        # Operators have no language of their own: the site's.
        language=settings.LANGUAGE_CODE,
        items=items,
        total=total,
    )
    email.full_clean()
    email.save()
    OperatorAlert.objects.filter(id__in=[a.id for a in alerts]).update(email=email)
    transaction.on_commit(partial(operator_alert_dispatch, email_id=email.id))
    return email


def operator_alert_dispatch(*, email_id: int) -> bool:
    """Hand the digest to Celery; a broker that is down leaves it for the next check."""
    from orders.tasks import operator_alert_send_task

    return enqueue_or_leave_for_sweep(operator_alert_send_task, email_id=email_id)


def operator_alert_send(*, email_id: int) -> bool:
    """Send one digest. Returns False when someone else sent or is sending it.

    Claim idiom: pending → sending with a conditional UPDATE; only the claimer sends.
    Raises: whatever the mail backend raises (the task retries); the row goes back
    to pending with the error noted, or to failed after MAX_ATTEMPTS.
    """
    now = timezone.now()
    claimed = OperatorAlertEmail.objects.filter(
        Q(status=OperatorAlertEmail.Status.PENDING)
        | Q(
            status=OperatorAlertEmail.Status.SENDING,
            claimed_at__lte=now - STALE_SENDING,
        ),
        id=email_id,
    ).update(
        status=OperatorAlertEmail.Status.SENDING,
        claimed_at=now,
        attempts=F("attempts") + 1,
    )
    if claimed != 1:
        return False
    email = OperatorAlertEmail.objects.get(id=email_id)
    try:
        _send(email)
    except Exception as exc:
        status = (
            OperatorAlertEmail.Status.FAILED
            if email.attempts >= MAX_ATTEMPTS
            else OperatorAlertEmail.Status.PENDING
        )
        OperatorAlertEmail.objects.filter(id=email_id).update(
            status=status, last_error=f"{type(exc).__name__}: {exc}"[:200]
        )
        raise
    OperatorAlertEmail.objects.filter(id=email_id).update(
        status=OperatorAlertEmail.Status.SENT, sent_at=timezone.now()
    )
    return True


def operator_alert_flush(*, now: dt.datetime | None = None) -> int:
    """Send digests still unsent a while after they were written; returns how many."""
    now = now or timezone.now()
    ids = list(
        OperatorAlertEmail.objects.filter(
            Q(
                status=OperatorAlertEmail.Status.PENDING,
                created_at__lte=now - FLUSH_AFTER,
            )
            | Q(
                status=OperatorAlertEmail.Status.SENDING,
                claimed_at__lte=now - STALE_SENDING,
            )
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:20]
    )
    sent = 0
    started = time.monotonic()
    for email_id in ids:
        if time.monotonic() - started > FLUSH_BUDGET_SECONDS:
            break
        try:
            sent += operator_alert_send(email_id=email_id)
        except Exception:
            logger.warning(
                "operator alert %s failed again; will retry", email_id, exc_info=True
            )
    return sent


# --- What each "waiting on a human" digest lists (snapshots, JSON-safe) -----------


def _when(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


def _review_items(now: dt.datetime) -> tuple[list[Item], int]:
    orders = selectors.order_review_waiting_list()
    return [
        {
            "id": o.id,
            "number": o.number,
            "amount": str(o.paid_amount or o.total_amount),
            "since": _when(o.paid_at),
        }
        for o in orders[:DIGEST_MAX_ITEMS]
    ], orders.count()


def _refund_items(now: dt.datetime) -> tuple[list[Item], int]:
    refunds = selectors.refund_failed_list(now)
    return [
        {
            "id": r.id,
            "number": r.order.number,
            "amount": str(r.amount),
            "error": r.last_error[:100],
            "submitted": _when(r.claimed_at)
            if r.status == Refund.Status.SUBMITTED
            else None,
        }
        for r in refunds[:DIGEST_MAX_ITEMS]
    ], refunds.count()


def _problem_items(now: dt.datetime) -> tuple[list[Item], int]:
    reports = selectors.problem_report_open_list()
    return [
        {
            "id": r.id,
            "number": r.order.number,
            "kind": r.kind,
            "since": _when(r.created_at),
        }
        for r in reports[:DIGEST_MAX_ITEMS]
    ], reports.count()


def _topup_items(now: dt.datetime) -> tuple[list[Item], int]:
    topups = selectors.topup_attention_list(now=now)
    return [
        {
            "id": t.id,
            "number": t.order_line.order.number,
            "sku": t.sku.code,
            "status": t.status,
            "note": t.attention_note[:100],
        }
        for t in topups[:DIGEST_MAX_ITEMS]
    ], topups.count()


_WAITING: dict[str, Callable[[dt.datetime], tuple[list[Item], int]]] = {
    Kind.REVIEW: _review_items,
    Kind.REFUND_FAILED: _refund_items,
    Kind.PROBLEM_OPEN: _problem_items,
    Kind.TOPUP_ATTENTION: _topup_items,
}


# --- Rendering ----------------------------------------------------------------------


def _admin_url(name: str, *args: Any) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def _local(value: str) -> str:
    if not value:
        return "—"
    moment = timezone.localtime(dt.datetime.fromisoformat(value))
    return formats.date_format(moment, "SHORT_DATETIME_FORMAT")


def _row(kind: str, item: Item) -> dict[str, str]:
    """One listed item as the templates show it, in the active language."""
    if kind == Kind.LOW_STOCK:
        return {
            "title": f"{item['code']} {item['name']}",
            "detail": _("可售 %(available)d，阈值 %(threshold)d")
            % {"available": item["available"], "threshold": item["threshold"]},
            "url": _admin_url("admin:catalog_sku_change", item["sku_id"]),
        }
    if kind == Kind.REVIEW:
        detail = _("¥%(amount)s，%(since)s 付款") % {
            "amount": item["amount"],
            "since": _local(item["since"]),
        }
        url = _admin_url("admin:orders_order_review", item["id"])
    elif kind == Kind.REFUND_FAILED and item.get("submitted"):
        detail = _("退款 ¥%(amount)s 于 %(since)s 提交给支付渠道，至今未到账") % {
            "amount": item["amount"],
            "since": _local(item["submitted"]),
        }
        url = _admin_url("admin:orders_refund_change", item["id"])
    elif kind == Kind.REFUND_FAILED:
        detail = _("退款 ¥%(amount)s 失败：%(error)s") % {
            "amount": item["amount"],
            "error": item["error"] or "—",
        }
        url = _admin_url("admin:orders_refund_change", item["id"])
    elif kind == Kind.PROBLEM_OPEN:
        detail = _("%(kind)s，%(since)s 提交") % {
            "kind": ProblemReport.Kind(item["kind"]).label,
            "since": _local(item["since"]),
        }
        url = _admin_url("admin:orders_problemreport_change", item["id"])
    else:
        status = TopUp.Status(item["status"]).label
        detail = f"{item['sku']} · {status}" + (
            f" · {item['note']}" if item["note"] else ""
        )
        url = _admin_url("admin:fulfillment_topup_change", item["id"])
    return {"title": item["number"], "detail": detail, "url": url}


def operator_alert_render(email: OperatorAlertEmail) -> tuple[str, str, str]:
    """(subject, text, HTML) of a digest, in its language, links on SITE_URL."""
    kind = Kind(email.kind)
    name, query = LIST_LINKS[kind]
    with translation.override(email.language or settings.LANGUAGE_CODE):
        context = {
            "kind": kind,
            "kind_label": kind.label,
            "intro": INTROS[kind],
            "rows": [_row(kind, item) for item in email.items],
            "total": email.total,
            "more": max(email.total - len(email.items), 0),
            "list_url": _admin_url(name) + query,
            "day": email.day,
        }
        template = "emails/operators/digest"
        subject = render_to_string(f"{template}_subject.txt", context).strip()
        text = render_to_string(f"{template}.txt", context)
        html = render_to_string(f"{template}.html", context)
    return subject, text, html


def _send(email: OperatorAlertEmail) -> None:
    subject, text, html = operator_alert_render(email)
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, list(email.to)
    )
    message.attach_alternative(html, "text/html")
    message.send()
