"""The order as the partner API shows it (SPEC §4.4 `GET /api/v1/orders/<out_trade_no>`).

Card codes are decrypted only here, only for the partner whose order it is,
and each one is audited exactly as the storefront's reveal is
(`order_code_reveal`: an OrderEvent and a CodeAccessLog row per code).
"""

from __future__ import annotations

from typing import TypedDict

from django.db.models import OuterRef, Subquery

from accounts.models import User
from config.lib.money import format_amount
from distribution.models import PartnerOrder
from fulfillment.models import CardCode, SupplierAttempt, TopUp
from orders.models import Order, OrderLine
from orders.services import order_code_reveal

# Top-up states as SPEC §2 names them: our worker's steps before the supplier
# has the order are still "pending"; waiting on its result is "submitted".
TOPUP_STATUS: dict[str, str] = {
    TopUp.Status.PENDING: "pending",
    TopUp.Status.WORKING: "pending",
    TopUp.Status.WAITING: "submitted",
    TopUp.Status.SUCCEEDED: "succeeded",
    TopUp.Status.FAILED: "failed",
}


class TopUpReply(TypedDict):
    status: str
    supplier_order_no: str


class OrderReply(TypedDict):
    out_trade_no: str
    number: str
    status: str
    sku: str
    quantity: int
    amount: str
    codes: list[str]
    topups: list[TopUpReply]


def partner_order_reply(
    *, partner_order: PartnerOrder, user: User, ip_address: str | None = None
) -> OrderReply:
    """The order now, its delivered codes decrypted for `user` (its buyer) and audited.

    Raises: RevealError when `user` is not the order's buyer.
    """
    order = Order.objects.get(pk=partner_order.order_id)
    top = (
        OrderLine.objects.filter(order_id=order.pk, parent__isnull=True)
        .select_related("sku")
        .order_by("id")
        .first()
    )
    code_ids = list(
        CardCode.objects.filter(
            order_line__order_id=order.pk,
            order_line__status=OrderLine.Status.DELIVERED,
            status=CardCode.Status.SOLD,
        )
        .order_by("order_line_id", "id")
        .values_list("id", flat=True)
    )
    codes = [
        order_code_reveal(
            order=order, code_id=code_id, user=user, ip_address=ip_address
        )
        for code_id in code_ids
    ]
    latest_supplier_no = (
        SupplierAttempt.objects.filter(topup=OuterRef("pk"))
        .exclude(supplier_order_id="")
        .order_by("-id")
        .values("supplier_order_id")[:1]
    )
    topups = [
        TopUpReply(
            status=TOPUP_STATUS.get(status, status), supplier_order_no=number or ""
        )
        for status, number in TopUp.objects.filter(order_line__order_id=order.pk)
        .annotate(number=Subquery(latest_supplier_no))
        .order_by("order_line_id")
        .values_list("status", "number")
    ]
    return OrderReply(
        out_trade_no=partner_order.out_trade_no,
        number=order.number,
        status=order.status,
        sku=top.sku.code if top is not None else "",
        quantity=top.quantity if top is not None else 0,
        amount=format_amount(order.total_amount),
        codes=codes,
        topups=topups,
    )
