"""The built-in sandbox gateway (SPEC 4.5): a hosted checkout page and signed notifies.

Signature: lowercase hex HMAC-SHA256(SANDBOX_PAY_SECRET, the other fields sorted by
name as k=v joined by &).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from config.lib.errors import DomainError
from config.lib.money import format_amount, parse_amount
from orders.gateways.base import NotifyRejected, ParsedNotify

if TYPE_CHECKING:
    from orders.models import Order, Payment

NOTIFY_FIELDS = (
    "out_trade_no",
    "trade_no",
    "total_amount",
    "trade_status",
    "notify_id",
)
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"


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
    fields["sign"] = sign(fields, settings.SANDBOX_PAY_SECRET)
    return fields


class SandboxGateway:
    name = "sandbox"
    ack_body = "success"

    def payment_start(self, *, order: Order, notify_url: str, return_url: str) -> str:
        from django.db.models import Subquery

        from orders.models import OrderLine, SandboxTrade

        # One open trade per order: a second "pay" click reuses it. One read
        # answers both what is open and what the trade is for: the order's lines,
        # each carrying the token of a waiting trade when there is one.
        waiting = SandboxTrade.objects.filter(
            out_trade_no=order.number, status=SandboxTrade.Status.WAITING
        )
        lines = list(
            OrderLine.objects.filter(order_id=order.id)
            .annotate(open_token=Subquery(waiting.values("token")[:1]))
            .values_list("sku_name", "quantity", "open_token")
        )
        token = next((t for _, _, t in lines if t), None)
        if token is None:
            token = SandboxTrade.objects.create(
                trade_no="SBX" + secrets.token_hex(12).upper(),
                out_trade_no=order.number,
                subject=", ".join(f"{name} × {qty}" for name, qty, _ in lines)[:200],
                total_amount=order.total_amount,
                notify_url=notify_url,
                return_url=return_url,
            ).token
        return reverse("orders:sandbox-pay", args=[token])

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        missing = [f for f in (*NOTIFY_FIELDS, "sign") if not fields.get(f)]
        if missing:
            raise NotifyRejected(
                "missing fields: " + ", ".join(missing), code="invalid"
            )
        expected = sign(
            {k: fields[k] for k in NOTIFY_FIELDS}, settings.SANDBOX_PAY_SECRET
        )
        if not hmac.compare_digest(expected, fields["sign"].lower()):
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
                raise DomainError(
                    "sandbox refuses the refund: no paid trade " + payment.trade_no
                )
            if refund_no in trade.refund_nos:
                return
            if trade.refunded_amount + amount > trade.total_amount:
                raise DomainError("sandbox refuses the refund: more than was paid")
            trade.refunded_amount += amount
            trade.refund_nos = [*trade.refund_nos, refund_no]
            trade.save(update_fields=["refunded_amount", "refund_nos", "updated_at"])
