"""The built-in sandbox gateway (SPEC 4.5): a hosted checkout page and signed notifies.

Everything sandbox lives here and in sandbox_views.py (its hosted page): the
gateway, the trade the shopper settles on that page, the notify it then owes
the shop and the sweep that sends it again. Elsewhere only its registration
(orders/gateways/__init__.py), its URL, its model and the thin Celery tasks
name it.

Signature: lowercase hex HMAC-SHA256(SANDBOX_PAY_SECRET, the other fields sorted by
name as k=v joined by &).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.lib.money import format_amount, parse_amount
from config.lib.tasks import enqueue_or_leave_for_sweep
from config.lib.urls import reverse_arg
from orders.gateways.base import (
    Ack,
    ClientKind,
    GatewayError,
    NotifyRejected,
    ParsedNotify,
    RefundState,
    form_notify_fields,
    text_ack,
)

if TYPE_CHECKING:
    from orders.models import Order, Payment, SandboxTrade

logger = logging.getLogger(__name__)

NOTIFY_FIELDS = (
    "out_trade_no",
    "trade_no",
    "total_amount",
    "trade_status",
    "notify_id",
)
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"
# SandboxTrade.status → what `query` answers; a paid trade wins over the others.
QUERY_STATUS: dict[str, Literal["success", "closed", "waiting"]] = {
    "paid": "success",
    "waiting": "waiting",
    "closed": "closed",
}
QUERY_PREFERENCE = ("paid", "waiting", "closed")


def sign(fields: dict[str, str], secret: str) -> str:
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def notify_fields(
    *, out_trade_no: str, trade_no: str, amount: Decimal, status: str
) -> dict[str, str]:
    """A signed notify body, as the sandbox gateway POSTs it."""
    fields = {
        "out_trade_no": out_trade_no,
        "trade_no": trade_no,
        "total_amount": format_amount(amount),
        "trade_status": status,
        "notify_id": secrets.token_hex(16),
    }
    fields["sign"] = sign(fields, _secret())
    return fields


def is_enabled() -> bool:
    """Registered and routed only while PAYMENT_SANDBOX_ENABLED is on."""
    return bool(settings.PAYMENT_SANDBOX_ENABLED)


def _secret() -> str:
    # An empty secret would let anyone sign a "paid" notify: never run without one.
    secret = str(settings.SANDBOX_PAY_SECRET)
    if not secret:
        raise ImproperlyConfigured(
            "PAYMENT_SANDBOX_ENABLED is on but SANDBOX_PAY_SECRET is empty"
        )
    return secret


def _trade_open_or_reuse(values: dict[str, Any], *, order_id: int) -> str:
    """The token of the order's waiting trade, or of a trade of these `values`
    (by attname; the others the model's defaults) written now, its subject made
    from the order's lines: one statement (PostgreSQL), on every checkout."""
    from django.db import connection

    from config.lib.db import execute
    from config.lib.db_row import row_values
    from orders.models import SandboxTrade

    table = _quoted_table(SandboxTrade._meta.db_table)
    columns, params, _attrs = row_values(SandboxTrade, values, skip=("subject",))
    sql = _trade_open_sql(table, columns)
    waiting = [values["out_trade_no"], SandboxTrade.Status.WAITING.value]
    with connection.cursor() as cursor:
        execute(cursor, sql, [*waiting, *params, order_id, ""])
        row = cursor.fetchone()
        if row is None:
            # Another click opened the order's trade at the same moment: the
            # one-waiting-trade constraint turned this insert away, and this
            # statement's snapshot is older than that trade. Read it now.
            cursor.execute(
                f'SELECT "token" FROM {table}'  # noqa: S608 (the model's table)
                ' WHERE "out_trade_no" = %s AND "status" = %s ORDER BY "id" LIMIT 1',
                waiting,
            )
            row = cursor.fetchone()
    if row is None:
        raise GatewayError("sandbox: the order's trade was settled meanwhile")
    return str(row[0])


@functools.lru_cache(maxsize=8)
def _quoted_table(name: str) -> str:
    from django.db import connection

    return str(connection.ops.quote_name(name))


@functools.lru_cache(maxsize=8)
def _trade_open_sql(table: str, columns: tuple[str, ...]) -> str:
    """`_trade_open_or_reuse`'s statement, made once per table and columns."""
    return (
        f'WITH w AS (SELECT "token" FROM {table}'  # noqa: S608 (the model's table)
        ' WHERE "out_trade_no" = %s AND "status" = %s ORDER BY "id" LIMIT 1),'
        f' n AS (INSERT INTO {table} ({", ".join(columns)}, "subject")'
        f" SELECT {', '.join(['%s'] * len(columns))}, left(coalesce(("
        """SELECT string_agg("sku_name" || ' × ' || "quantity", ', ' ORDER BY "id")"""
        ' FROM "orders_orderline" WHERE "order_id" = %s), %s), 200)'
        ' WHERE NOT EXISTS (SELECT 1 FROM w) ON CONFLICT DO NOTHING RETURNING "token")'
        ' SELECT "token" FROM w UNION ALL SELECT "token" FROM n'
    )


def _trade_open_or_reuse_orm(trade: SandboxTrade, *, order_id: int) -> str:
    """`_trade_open_or_reuse` for other databases: one read, then the insert."""
    from django.db.models import Subquery

    from orders.models import OrderLine

    # One read answers both what is open and what the trade is for: the order's
    # lines, each carrying the token of a waiting trade when there is one.
    waiting = type(trade).objects.filter(
        out_trade_no=trade.out_trade_no, status=trade.Status.WAITING
    )
    lines = list(
        OrderLine.objects.filter(order_id=order_id)
        .annotate(open_token=Subquery(waiting.values("token")[:1]))
        .values_list("sku_name", "quantity", "open_token")
    )
    token = next((t for _, _, t in lines if t), None)
    if token is not None:
        return str(token)
    trade.subject = ", ".join(f"{name} × {qty}" for name, qty, _ in lines)[:200]
    try:
        with transaction.atomic():
            trade.save(force_insert=True)
    except IntegrityError:
        # Another click opened it first (one waiting trade per order).
        token = waiting.values_list("token", flat=True).first()
        if token is None:
            raise GatewayError(
                "sandbox: the order's trade was settled meanwhile"
            ) from None
        return str(token)
    return trade.token


class SandboxGateway:
    name = "sandbox"
    label = _("沙箱支付")

    def __init__(self) -> None:
        _secret()  # refuse to be built without a secret

    def payment_start(
        self,
        *,
        order: Order,
        notify_url: str,
        return_url: str,
        client: ClientKind = "desktop",
    ) -> str:
        """The hosted page serves desktop and phone alike."""
        from django.db import connection

        from orders.models import SandboxTrade

        # One open trade per order: a second "pay" click reuses it.
        values = {
            "trade_no": "SBX" + secrets.token_hex(12).upper(),
            "out_trade_no": order.number,
            "total_amount": order.total_amount,
            "notify_url": notify_url,
            "return_url": return_url,
        }
        if connection.vendor == "postgresql":
            token = _trade_open_or_reuse(values, order_id=order.id)
        else:
            token = _trade_open_or_reuse_orm(SandboxTrade(**values), order_id=order.id)
        return reverse_arg("orders:sandbox-pay", token)

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]:
        return form_notify_fields(post)

    def ack(self, *, accepted: bool) -> Ack:
        return text_ack(accepted=accepted)

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        missing = [f for f in (*NOTIFY_FIELDS, "sign") if not fields.get(f)]
        if missing:
            raise NotifyRejected(
                "missing fields: " + ", ".join(missing), code="invalid"
            )
        expected = sign({k: fields[k] for k in NOTIFY_FIELDS}, _secret())
        # Bytes: compare_digest refuses a str holding non-ASCII characters.
        if not hmac.compare_digest(expected.encode(), fields["sign"].lower().encode()):
            raise NotifyRejected("signature does not verify", code="bad_signature")
        amount = parse_amount(fields["total_amount"])
        if amount is None:
            raise NotifyRejected("total_amount is not a 2-place amount", code="invalid")
        status = fields["trade_status"]
        if status not in (TRADE_SUCCESS, TRADE_CLOSED):
            raise NotifyRejected(f"unknown trade_status {status[:30]}", code="invalid")
        return ParsedNotify(
            out_trade_no=fields["out_trade_no"],
            trade_no=fields["trade_no"],
            amount=amount,
            status="success" if status == TRADE_SUCCESS else "closed",
            notify_id=fields["notify_id"],
        )

    def payment_on_its_way(self, *, out_trade_no: str) -> bool:
        """Paid on the hosted page, its notify not yet applied (one query): the
        order's latest trade is paid."""
        from orders.models import SandboxTrade

        trade = (
            SandboxTrade.objects.filter(out_trade_no=out_trade_no)
            .order_by("-created_at")
            .values_list("status", flat=True)
            .first()
        )
        return trade == SandboxTrade.Status.PAID

    def close(self, *, out_trade_no: str) -> None:
        """Close the order's waiting trades: its pay page then offers nothing to pay."""
        from orders.models import SandboxTrade

        SandboxTrade.objects.filter(
            out_trade_no=out_trade_no, status=SandboxTrade.Status.WAITING
        ).update(status=SandboxTrade.Status.CLOSED)

    def refund(self, *, payment: Payment, amount: Decimal, refund_no: str) -> None:
        """Refund against the trade. Idempotent on refund_no, as real gateways are."""
        from orders.models import SandboxTrade

        with transaction.atomic():
            trade = (
                SandboxTrade.objects.select_for_update()
                .filter(trade_no=payment.trade_no, status=SandboxTrade.Status.PAID)
                .first()
            )
            if trade is None:
                raise GatewayError(
                    "sandbox refuses the refund: no paid trade " + payment.trade_no
                )
            if refund_no in trade.refund_nos:
                return
            if trade.refunded_amount + amount > trade.total_amount:
                raise GatewayError("sandbox refuses the refund: more than was paid")
            trade.refunded_amount += amount
            trade.refund_nos = [*trade.refund_nos, refund_no]
            trade.save(update_fields=["refunded_amount", "refund_nos", "updated_at"])

    def query(self, *, out_trade_no: str) -> ParsedNotify | None:
        """The order's trade from the sandbox's own table: paid first, then waiting."""
        from orders.models import SandboxTrade

        trades = sorted(
            SandboxTrade.objects.filter(out_trade_no=out_trade_no),
            key=lambda t: (QUERY_PREFERENCE.index(t.status), -t.pk),
        )
        if not trades:
            return None
        trade = trades[0]
        return ParsedNotify(
            out_trade_no=trade.out_trade_no,
            trade_no=trade.trade_no,
            amount=Decimal(trade.total_amount),
            status=QUERY_STATUS[trade.status],
            notify_id="",
        )

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        """Refunds are settled at once in the sandbox; it keeps numbers, not amounts."""
        from orders.models import SandboxTrade

        trade = SandboxTrade.objects.filter(trade_no=payment.trade_no).first()
        if trade is None or refund_no not in trade.refund_nos:
            return None
        return RefundState(refund_no=refund_no, status="succeeded", amount=None)


# The sandbox's own side of a payment: the shopper's click on its hosted page
# (orders/gateways/sandbox_views.py), the notify that click owes the shop, and
# the sweep that sends it again until the shop acknowledges it, as a real
# gateway keeps retrying.

# A trade whose notify has not been acknowledged this long after its last
# attempt is sent again; after a day the sandbox gives up, as Alipay does.
RESEND_AFTER = dt.timedelta(minutes=1)
GIVE_UP_AFTER = dt.timedelta(days=1)
SWEEP_BATCH = 100


def sandbox_trade_decide(*, trade: SandboxTrade, pay: bool) -> bool:
    """The shopper clicked pay or cancel on the sandbox page: settle the trade, send the notify.

    Claim idiom: waiting → paid/closed happens once; a double click finds it settled
    and sends nothing. The same UPDATE records the notify the trade now owes
    (`notify_status`); after commit it goes to Celery through the outbox idiom
    (config/lib/tasks.py), POSTed over HTTP and retried until our endpoint
    replies `success`, as a real gateway would. A broker that is down leaves it
    to `sandbox_notify_sweep` below.
    Returns True when this call settled it.
    """
    from orders.models import SandboxTrade
    from orders.tasks import sandbox_notify_deliver_task

    new_status = SandboxTrade.Status.PAID if pay else SandboxTrade.Status.CLOSED
    trade_status = TRADE_SUCCESS if pay else TRADE_CLOSED
    now = timezone.now()
    # One statement, no transaction of its own: the task is queued only after
    # the claim has committed (autocommit), and only by the request that made it.
    claimed = SandboxTrade.objects.filter(
        pk=trade.pk, status=SandboxTrade.Status.WAITING
    ).update(status=new_status, notify_status=trade_status, updated_at=now)
    if claimed != 1:
        return False
    trade.status, trade.notify_status, trade.updated_at = new_status, trade_status, now
    transaction.on_commit(
        partial(
            enqueue_or_leave_for_sweep,
            sandbox_notify_deliver_task,
            trade_id=trade.id,
            trade_status=trade_status,
        )
    )
    return True


def sandbox_notify_deliver(*, trade_id: int, trade_status: str) -> bool:
    """POST the signed notify to the trade's notify URL; True when it answered `success`.

    Each attempt is stamped on the trade (`updated_at`: the sweep leaves a
    trade alone while its task is still trying); the acknowledgement is
    recorded (`notified_at`), after which nothing re-sends it.
    Raises: httpx.HTTPError when the shop cannot be reached.
    """
    from config.lib.http import http_post_form
    from orders.models import SandboxTrade

    trade = SandboxTrade.objects.get(id=trade_id)
    if trade.notified_at is not None:
        return True  # acknowledged already (a sweep's copy crossed the task)
    SandboxTrade.objects.filter(pk=trade.pk).update(updated_at=timezone.now())
    fields = notify_fields(
        out_trade_no=trade.out_trade_no,
        trade_no=trade.trade_no,
        amount=Decimal(trade.total_amount),
        status=trade_status,
    )
    response = http_post_form(trade.notify_url, fields)
    if response.status_code != 200 or response.text.strip() != "success":
        return False
    SandboxTrade.objects.filter(pk=trade.pk, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
    return True


def sandbox_notify_sweep(*, now: dt.datetime | None = None) -> int:
    """Queue again the sandbox notifies never acknowledged; returns how many.

    The broker was down when the shopper clicked pay, or the task ran out of
    retries: the trade keeps what it owes (`notify_status`, `notified_at`).
    Claim idiom: each due trade's `updated_at` moves to now in a conditional
    UPDATE, so two sweeps never both send it, and the next try waits
    RESEND_AFTER again.
    Idempotent: a notify sent twice is a duplicate for the shop.
    """
    from orders.models import SandboxTrade
    from orders.tasks import sandbox_notify_deliver_task

    now = now or timezone.now()
    due = list(
        SandboxTrade.objects.filter(
            notified_at__isnull=True,
            updated_at__lte=now - RESEND_AFTER,
            created_at__gte=now - GIVE_UP_AFTER,
        )
        .exclude(notify_status="")
        .order_by("updated_at")
        .values_list("id", "notify_status", "updated_at")[:SWEEP_BATCH]
    )
    queued = 0
    for trade_id, trade_status, updated_at in due:
        claimed = SandboxTrade.objects.filter(
            pk=trade_id, notified_at__isnull=True, updated_at=updated_at
        ).update(updated_at=now)
        if claimed != 1:
            continue
        queued += enqueue_or_leave_for_sweep(
            sandbox_notify_deliver_task, trade_id=trade_id, trade_status=trade_status
        )
    if queued:
        logger.info("sandbox: %d unacknowledged notifies sent again", queued)
    return queued
