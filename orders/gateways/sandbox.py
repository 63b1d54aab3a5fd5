"""The built-in sandbox gateway (SPEC 4.5): a hosted checkout page and signed notifies.

Signature: lowercase hex HMAC-SHA256(SANDBOX_PAY_SECRET, the other fields sorted by
name as k=v joined by &).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.lib.money import format_amount, parse_amount
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


def _trade_open_or_reuse(trade: SandboxTrade, *, order_id: int) -> str:
    """The token of the order's waiting trade, or of `trade` written now, its
    subject made from the order's lines: one statement (PostgreSQL), on every
    checkout."""
    from django.db import connection

    from config.lib.db import insert_values

    table = connection.ops.quote_name(trade._meta.db_table)
    columns, values = insert_values(trade, skip=("subject",))
    sql = (
        f'WITH w AS (SELECT "token" FROM {table}'  # noqa: S608 (the model's table)
        ' WHERE "out_trade_no" = %s AND "status" = %s ORDER BY "id" LIMIT 1),'
        f' n AS (INSERT INTO {table} ({", ".join(columns)}, "subject")'
        f" SELECT {', '.join(['%s'] * len(columns))}, left(coalesce(("
        """SELECT string_agg("sku_name" || ' × ' || "quantity", ', ' ORDER BY "id")"""
        ' FROM "orders_orderline" WHERE "order_id" = %s), %s), 200)'
        ' WHERE NOT EXISTS (SELECT 1 FROM w) ON CONFLICT DO NOTHING RETURNING "token")'
        ' SELECT "token" FROM w UNION ALL SELECT "token" FROM n'
    )
    waiting = [trade.out_trade_no, trade.Status.WAITING.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*waiting, *values, order_id, ""])
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
        trade = SandboxTrade(
            trade_no="SBX" + secrets.token_hex(12).upper(),
            out_trade_no=order.number,
            total_amount=order.total_amount,
            notify_url=notify_url,
            return_url=return_url,
        )
        if connection.vendor == "postgresql":
            token = _trade_open_or_reuse(trade, order_id=order.id)
        else:
            token = _trade_open_or_reuse_orm(trade, order_id=order.id)
        return reverse("orders:sandbox-pay", args=[token])

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
