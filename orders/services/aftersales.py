"""After-sales for operators: refund lines (codes back to stock or void), 补单, confirm paid.

Every action here is one use case an operator starts in admin
(orders/aftersales_admin.py), recorded on the order with the operator's name:

- `order_refund_by_operator`: money back for the whole order or some lines
  (partial amounts allowed) through the gateway that took it; the codes of a
  line refunded in full come back from the shopper (revealed ones are voided,
  the others voided or restocked as the operator chose). A form's one-time key
  makes a second click find the first refund.
- `order_line_redeliver` (补单): a paid order's line stuck undelivered gets its
  codes from stock now, or its top-up looked at again.
- `order_confirm_paid` (confirm_paid.py): a payment whose notify never came, on
  the evidence of a gateway trade number the gateway's own query confirms.

Lock order: Order → CardCode (free codes SKIP LOCKED). Refunds reach the
gateway after commit (refunds.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment.models import TopUp
from fulfillment.services import (
    OutOfStockError,
    card_codes_mark_sold,
    card_codes_reserve,
    topup_retry_now,
)
from fulfillment.services.code_returns import (
    TakenBack,
    card_codes_sold_lock,
    card_codes_take_back,
)
from orders.locks import order_lock_for_update_by_id
from orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    ProblemReport,
    Refund,
    ReturnedCode,
)
from orders.services.delivery import order_settle
from orders.services.refunds import refund_request
from orders.transitions import lines_move

LS = OrderLine.Status
OS = Order.Status
CodeDisposition = Literal["void", "restock"]
REASON_MAX = 200  # Refund.reason, ReturnedCode.reason, OrderLine.status_reason

# Orders whose money can go back by an operator's hand (review: reject it there).
REFUNDABLE_STATES = frozenset(
    {OS.PAID, OS.FULFILLING, OS.DELIVERED, OS.PARTIALLY_REFUNDED}
)
REDELIVERABLE_STATES = frozenset({OS.PAID, OS.FULFILLING})

ERR_REASON_REQUIRED = _("请填写原因")
ERR_REASON_TOO_LONG = _("原因最长 200 个字")
ERR_NUL = _("内容含有不允许的字符")
ERR_ORDER_NOT_FOUND = _("订单不存在")
ERR_NOT_REFUNDABLE = _("订单状态为“%(status)s”，不能退款")
ERR_IN_REVIEW = _("订单在风控审核中：请在人工审核页拒绝并退款")
ERR_NOTHING_CHOSEN = _("请至少为一个明细填写退款金额")
ERR_NOTHING_LEFT = _("该订单已没有可退的金额")
ERR_LINE_NOT_IN_ORDER = _("明细 #%(line)s 不属于该订单")
ERR_TOPUP_OPEN = _(
    "“%(line)s”的直充仍在进行：请在直充记录页查询结果或退款，以免重复到账后又退款"
)
ERR_AMOUNT = _("“%(line)s”的退款金额须大于 0、最多两位小数")
ERR_NOT_REDELIVERABLE = _("该明细不需要补单（状态：%(status)s）")
ERR_ORDER_NOT_REDELIVERABLE = _("订单状态为“%(status)s”，不能补单")
ERR_NO_STOCK = _("库存不足：“%(sku)s”还差 %(missing)d 张卡密，请先补充库存")
ERR_TOPUP_DONE = _("该直充已结束或正在处理中，无需补单")


class AfterSalesError(DomainError):
    """An after-sales action refused; `field` names the form field it is about."""

    code = "aftersales_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def clean_text(
    value: str, *, field: str, max_length: int, required: bool = True
) -> str:
    """Free text from a form: stripped, no NUL, not too long (the models' columns).

    Raises: AfterSalesError at `field`.
    """
    text = (value or "").strip()
    if "\x00" in text:
        raise AfterSalesError(str(ERR_NUL), field=field)
    if required and not text:
        raise AfterSalesError(str(ERR_REASON_REQUIRED), field=field)
    if len(text) > max_length:
        raise AfterSalesError(str(ERR_REASON_TOO_LONG), field=field)
    return text


# --- codes coming back from a line ---


def line_codes_take_back(
    *,
    order: Order,
    line: OrderLine,
    restock: bool,
    cause: str,
    reason: str,
    now: dt.datetime,
    actor: User | None = None,
    report: ProblemReport | None = None,
    code_ids: list[int] | None = None,
) -> list[TakenBack]:
    """Take a line's sold codes (or `code_ids` of them) back; record each with why.

    Revealed codes are voided whatever `restock` says. Each is kept linked to
    the line (ReturnedCode) and the order's history names them by hint only.
    The caller holds the Order row lock. Locks: CardCode.
    """
    codes = card_codes_sold_lock(order_line_id=line.id, code_ids=code_ids)
    taken = card_codes_take_back(codes=codes, restock=restock, now=now)
    if not taken:
        return taken
    ReturnedCode.objects.bulk_create(
        ReturnedCode(
            code_id=t.code_id,
            line=line,
            batch_id=t.batch_id,
            outcome=ReturnedCode.Outcome.RESTOCKED
            if t.restocked
            else ReturnedCode.Outcome.VOIDED,
            cause=cause,
            was_revealed=t.was_revealed,
            reason=reason[:REASON_MAX],
            report=report,
            actor=actor,
        )
        for t in taken
    )
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.CODES_RETURNED,
        actor=actor,
        detail={
            "line": line.id,
            "cause": cause,
            "restocked": [t.hint for t in taken if t.restocked],
            "voided": [t.hint for t in taken if not t.restocked],
        },
    )
    return taken


# --- refunds by an operator ---


def order_refund_by_operator(
    *,
    order_id: int,
    amounts: Mapping[int, Decimal] | None,
    reason: str,
    actor: User,
    codes: CodeDisposition = "void",
    request_key: str = "",
    language: str = "",
    report: ProblemReport | None = None,
    now: dt.datetime | None = None,
) -> Refund:
    """Refund a whole order (`amounts` None) or these lines by these amounts.

    1. Lock the order. A refund made before under the same `request_key` is
       returned as it is (a second click changes nothing).
    2. Check the order can give money back, each line is one of its delivered-
       or-deliverable lines, each amount is positive with two places, and no
       top-up is still open at a supplier (refunding it could pay twice).
    3. `refund_request`: the lines' refunded amounts grow, undelivered lines end
       refunded, the gateway is asked after commit.
    4. Each card-code line now refunded in full gives its codes back: revealed
       ones voided, the others voided (`codes="void"`, the default) or
       restocked (`"restock"`), each recorded against the line.
    Locks: Order → CardCode. Raises: AfterSalesError, RefundError (nothing written).
    Idempotent: per `request_key`.
    """
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", max_length=REASON_MAX)
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id)
        if order is None:
            raise AfterSalesError(str(ERR_ORDER_NOT_FOUND))
        if request_key:
            done = Refund.objects.filter(order=order, request_key=request_key).first()
            if done is not None:
                return done
        if order.status == OS.REVIEW:
            raise AfterSalesError(str(ERR_IN_REVIEW))
        if order.status not in REFUNDABLE_STATES:
            raise AfterSalesError(
                str(ERR_NOT_REFUNDABLE) % {"status": order.get_status_display()}
            )
        leaves = {
            line.id: line
            for line in OrderLine.objects.filter(order=order).select_related("topup")
            if not line.is_bundle
        }
        chosen = _chosen_lines(leaves, amounts)
        refund = refund_request(
            order=order,
            lines=chosen,
            reason=reason,
            actor_kind=Refund.ActorKind.OPERATOR,
            actor=actor,
            now=now,
        )
        Refund.objects.filter(pk=refund.pk).update(
            request_key=request_key[:64], language=language[:10]
        )
        for line, _amount in chosen:
            if line.delivery == Sku.Delivery.CARD_CODE and line.status == LS.REFUNDED:
                line_codes_take_back(
                    order=order,
                    line=line,
                    restock=codes == "restock",
                    cause=ReturnedCode.Cause.REFUND,
                    reason=reason,
                    now=now,
                    actor=actor,
                    report=report,
                )
    return refund


def _chosen_lines(
    leaves: dict[int, OrderLine], amounts: Mapping[int, Decimal] | None
) -> list[tuple[OrderLine, Decimal]]:
    """The (line, amount) pairs to refund. Raises: AfterSalesError."""
    if amounts is None:
        chosen = [
            (x, x.refundable_amount) for x in leaves.values() if x.refundable_amount > 0
        ]
        if not chosen:
            raise AfterSalesError(str(ERR_NOTHING_LEFT))
    else:
        chosen = []
        for line_id, amount in amounts.items():
            line = leaves.get(line_id)
            if line is None:
                raise AfterSalesError(
                    str(ERR_LINE_NOT_IN_ORDER) % {"line": line_id},
                    field=f"amount_{line_id}",
                )
            if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                raise AfterSalesError(
                    str(ERR_AMOUNT) % {"line": line.sku_name}, field=f"amount_{line_id}"
                )
            chosen.append((line, amount))
        if not chosen:
            raise AfterSalesError(str(ERR_NOTHING_CHOSEN))
    for line, _amount in chosen:
        topup: TopUp | None = getattr(line, "topup", None) if line.is_topup else None
        if line.status == LS.DELIVERING and topup is not None and topup.is_open:
            raise AfterSalesError(
                str(ERR_TOPUP_OPEN) % {"line": line.sku_name}, field=f"amount_{line.id}"
            )
    return chosen


# --- 补单 ---


@dataclass(frozen=True)
class Redelivered:
    line_id: int
    outcome: Literal["delivered", "topup_retried"]


def order_line_redeliver(
    *, line_id: int, actor: User, now: dt.datetime | None = None
) -> Redelivered:
    """补单: deliver a paid order's line that is stuck reserved or delivering.

    1. Card codes: lock the order; the codes still missing are reserved from
       stock (the checkout's claim, SKIP LOCKED) and all the line's codes sold;
       the line is delivered and the order settled (the delivery email follows
       when the order has none yet).
    2. A top-up: looked at again now under its current number (never placed
       twice; fulfillment/services/topup_ops.py).
    Locks: Order → CardCode. Raises: AfterSalesError (nothing written).
    Idempotent: a delivered line is refused.
    """
    now = now or timezone.now()
    found = (
        OrderLine.objects.filter(pk=line_id).values_list("order_id", flat=True).first()
    )
    if found is None:
        raise AfterSalesError(str(ERR_ORDER_NOT_FOUND))
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=found)
        line = OrderLine.objects.select_related("sku", "topup").get(pk=line_id)
        if order is None or order.status not in REDELIVERABLE_STATES:
            status = order.get_status_display() if order is not None else "—"
            raise AfterSalesError(str(ERR_ORDER_NOT_REDELIVERABLE) % {"status": status})
        if line.is_bundle or line.status not in (LS.RESERVED, LS.DELIVERING):
            raise AfterSalesError(
                str(ERR_NOT_REDELIVERABLE) % {"status": line.get_status_display()}
            )
        if line.is_topup:
            topup: TopUp | None = getattr(line, "topup", None)
            if topup is None or not topup_retry_now(topup_id=topup.id, actor=actor):
                raise AfterSalesError(str(ERR_TOPUP_DONE))
            outcome: Literal["delivered", "topup_retried"] = "topup_retried"
        else:
            _codes_redeliver(order=order, line=line, now=now)
            outcome = "delivered"
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.LINE_REDELIVERED,
            actor=actor,
            detail={"line": line.id, "outcome": outcome},
        )
    return Redelivered(line_id=line.id, outcome=outcome)


def _codes_redeliver(*, order: Order, line: OrderLine, now: dt.datetime) -> None:
    held = line.codes.filter(status__in=["reserved", "sold"]).count()
    missing = line.quantity - held
    if missing > 0:
        try:
            card_codes_reserve(
                sku=line.sku, order_line_id=line.id, quantity=missing, now=now
            )
        except OutOfStockError:
            raise AfterSalesError(
                str(ERR_NO_STOCK) % {"sku": line.sku_name, "missing": missing}
            ) from None
    sold = card_codes_mark_sold(quantities={line.id: line.quantity}, now=now)
    if sold[line.id] != line.quantity:
        raise AfterSalesError(
            str(ERR_NO_STOCK)
            % {"sku": line.sku_name, "missing": line.quantity - sold[line.id]}
        )
    lines_move([line], LS.DELIVERED, now=now, delivered_at=now)
    order_settle(order=order, now=now)
