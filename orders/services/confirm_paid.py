"""Confirm paid: an operator marks an order paid on the evidence of a gateway trade number.

For "paid but the order stays unpaid": the notify never came (or was lost). The
operator gives the gateway and its trade number with a reason; the gateway's own
query must confirm the trade (exists, paid, this number, the order's amount)
before anything is written, and the payment is then applied by the very code
that applies a paid notify (orders/services/payments.py): a cancelled order is
re-reserved, or refunded when its stock is gone; the risk engine's paid-stage
check holds it as it would hold a notified one. The query happens before any
transaction; the operator and the evidence are recorded on the order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from orders.gateways import GatewayError, ParsedNotify, gateway_get
from orders.models import Order, OrderEvent, Payment, PaymentNotify
from orders.services.aftersales import (
    ERR_ORDER_NOT_FOUND,
    REASON_MAX,
    AfterSalesError,
    clean_text,
)
from orders.services.payments import payment_query_apply

OS = Order.Status
TRADE_NO_MAX = 64  # Payment.trade_no
TRADE_NO_RE = re.compile(r"^[A-Za-z0-9_\-]+$")

ERR_GATEWAY_UNKNOWN = _("该支付方式未启用")
ERR_TRADE_NO = _("请填写网关交易号（字母、数字、下划线或连字符，最多 64 位）")
ERR_NOT_CONFIRMABLE = _("订单状态为“%(status)s”，只有待支付或已取消的订单可以确认到账")
ERR_GATEWAY_DOWN = _("暂时无法向支付网关查询，请稍后再试：%(error)s")
ERR_GATEWAY_REFUSED = _("支付网关拒绝了查询：%(error)s")
ERR_NO_TRADE = _("支付网关查不到该订单的交易，未确认到账")
ERR_NOT_PAID = _("支付网关显示该订单的交易未支付（状态：%(status)s），未确认到账")
ERR_TRADE_MISMATCH = _(
    "交易号与支付网关的记录不符（网关记录为 %(trade_no)s），未确认到账"
)
ERR_NOT_APPLIED = _("支付通知流程未能入账（%(outcome)s），请查看支付通知记录")
ERR_AMOUNT_MISMATCH = _(
    "网关记录的金额 ¥%(paid)s 与订单金额 ¥%(total)s 不符，未确认到账"
)


@dataclass(frozen=True)
class Confirmed:
    """What confirming did: `outcome` is the notify outcome the payment had."""

    outcome: str
    verified: bool  # the gateway's query confirmed the trade


def order_confirm_paid(
    *,
    order_id: int,
    gateway_name: str,
    trade_no: str,
    reason: str,
    actor: User,
) -> Confirmed:
    """Mark a pending or cancelled order paid on the evidence of a gateway trade number.

    1. Check the inputs; an order already paid by this very trade is answered
       as done (a second click).
    2. Ask the gateway (its `query`, outside any transaction) for the order's
       trade: it must exist, be paid, carry this trade number and the order's
       amount. A gateway without a query is taken at the operator's word.
    3. `payment_query_apply`: recorded as a notify of the gateway, then the paid
       notify's own path (the risk check, then under the Order lock: record
       the payment, deliver, or re-reserve a cancelled order, or refund it
       when its stock is gone).
    4. Record who confirmed, on which evidence and why (OrderEvent).
    Locks: Order → CardCode. Raises: AfterSalesError (no payment written).
    Idempotent: on (gateway, trade_no), as a notify is.
    """
    reason = clean_text(reason, field="reason", max_length=REASON_MAX)
    trade_no = (trade_no or "").strip()
    if not trade_no or len(trade_no) > TRADE_NO_MAX or not TRADE_NO_RE.match(trade_no):
        raise AfterSalesError(str(ERR_TRADE_NO), field="trade_no")
    gateway = gateway_get(gateway_name)
    if gateway is None:
        raise AfterSalesError(str(ERR_GATEWAY_UNKNOWN), field="gateway")
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise AfterSalesError(str(ERR_ORDER_NOT_FOUND))
    if Payment.objects.filter(
        order=order, gateway=gateway_name, trade_no=trade_no
    ).exists():
        return Confirmed(outcome=PaymentNotify.Outcome.DUPLICATE, verified=True)
    if order.status not in (OS.PENDING, OS.CANCELLED):
        raise AfterSalesError(
            str(ERR_NOT_CONFIRMABLE) % {"status": order.get_status_display()}
        )
    parsed, verified = _verified_trade(gateway, order=order, trade_no=trade_no)
    # The lost-notify path: recorded as a notify of this gateway (source=query)
    # and applied by the notify's own code, the risk check before its lock.
    result = payment_query_apply(gateway_name=gateway_name, parsed=parsed)
    if not result.accepted:
        raise AfterSalesError(str(ERR_NOT_APPLIED) % {"outcome": result.outcome})
    outcome = result.outcome
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.PAID_CONFIRMED,
        actor=actor,
        detail={
            "gateway": gateway_name,
            "trade_no": trade_no,
            "reason": reason,
            "verified": verified,
            "outcome": outcome,
            "notify": result.notify_id,
        },
    )
    return Confirmed(outcome=outcome, verified=verified)


def _verified_trade(
    gateway: object, *, order: Order, trade_no: str
) -> tuple[ParsedNotify, bool]:
    """The order's trade as the gateway reports it. Raises: AfterSalesError."""
    query = getattr(gateway, "query", None)
    if query is None:  # no query to ask: the operator's evidence stands
        return (
            ParsedNotify(
                out_trade_no=order.number,
                trade_no=trade_no,
                amount=order.total_amount,
                status="success",
                notify_id="",
            ),
            False,
        )
    try:
        found: ParsedNotify | None = query(out_trade_no=order.number)
    except httpx.HTTPError as exc:
        raise AfterSalesError(
            str(ERR_GATEWAY_DOWN) % {"error": type(exc).__name__}
        ) from None
    except GatewayError as exc:
        raise AfterSalesError(
            str(ERR_GATEWAY_REFUSED) % {"error": exc.message[:100]}, field="trade_no"
        ) from None
    if found is None:
        raise AfterSalesError(str(ERR_NO_TRADE), field="trade_no")
    if found.status != "success":
        raise AfterSalesError(
            str(ERR_NOT_PAID) % {"status": _trade_status_text(found.status)},
            field="trade_no",
        )
    if found.trade_no != trade_no:
        raise AfterSalesError(
            str(ERR_TRADE_MISMATCH) % {"trade_no": found.trade_no}, field="trade_no"
        )
    if found.amount != order.total_amount:
        raise AfterSalesError(
            str(ERR_AMOUNT_MISMATCH)
            % {"paid": found.amount, "total": order.total_amount},
            field="trade_no",
        )
    return found, True


def _trade_status_text(status: str) -> str:
    return {"waiting": gettext("待支付"), "closed": gettext("已关闭")}.get(
        status, status
    )
