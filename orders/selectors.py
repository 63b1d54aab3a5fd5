"""Reads for the shopper's order pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from catalog import cache as catalog_cache
from catalog.models import Sku
from fulfillment.availability import SkuOffer, sku_offers
from fulfillment.models import CardCode, SupplierAttempt, TopUp
from orders.aftersales_selectors import (
    ReportView,
    SelfRefundOffer,
    buy_again_url,
    order_codes_annotate,
    order_lines_annotate,
    order_refunds_annotate,
    report_view,
    self_refund_offer,
    self_refund_window,
)
from orders.gateways import payment_on_its_way
from orders.models import Order, OrderLine, ProblemReport


def order_get_for_user(*, number: str, user_id: int) -> Order | None:
    """The shopper's order with its lines, their sold codes and top-ups (3 queries).

    A top-up line comes with its TopUp (a LEFT JOIN, no query of its own) and
    `topup_placed`: whether some attempt has gone out to a supplier yet.
    """
    return _order_get(number=number, user_id=user_id)


def order_get_for_guest(*, number: str) -> Order | None:
    """A guest order (no account) with its lines, as order_get_for_user: for a
    caller that has checked the visitor's access to it (orders/guest.py)."""
    return _order_get(number=number, user__isnull=True)


def _order_get(**filters: Any) -> Order | None:
    # After-sales (orders/aftersales_selectors.py): the SKU's self-refund window,
    # the product, the latest problem report, whether each code was revealed.
    lines = (
        order_lines_annotate(OrderLine.objects.select_related("topup"))
        .annotate(
            topup_placed=Exists(
                SupplierAttempt.objects.filter(
                    topup__order_line=OuterRef("pk"), placements__gt=0
                )
            )
        )
        .prefetch_related(
            Prefetch(
                "codes",
                queryset=order_codes_annotate(
                    CardCode.objects.filter(status=CardCode.Status.SOLD)
                )
                .only("id", "hint", "order_line_id", "status")
                .order_by("id"),
            )
        )
    )
    return (
        order_refunds_annotate(Order.objects.filter(**filters))
        .prefetch_related(Prefetch("lines", queryset=lines))
        .first()
    )


def order_get_by_token(
    *, user_id: int | None, client_token: str, email: str = ""
) -> Order | None:
    """The order this checkout token already made for the shopper, if any (one
    query); a guest (user_id None) by the checkout's email."""
    if not client_token:
        return None
    if user_id is None:
        return Order.objects.filter(
            user__isnull=True, email=email, client_token=client_token
        ).first()
    return Order.objects.filter(user_id=user_id, client_token=client_token).first()


def offer_get(*, code: str, now: dt.datetime | None = None) -> SkuOffer | None:
    """One SKU on sale now, by its code, with what can be sold of it; None when not for sale."""
    now = now or timezone.now()
    sku = catalog_cache.sku_on_sale(code=code, now=now)
    if sku is None:
        return None
    # The confirmation page and the sold-out answer show stock from the
    # short-lived stock cache: checkout's reservation is what decides.
    return sku_offers(skus=[sku], now=now, cached=True)[0]


def order_list_for_user(*, user_id: int) -> QuerySet[Order]:
    return (
        Order.objects.filter(user_id=user_id)
        .prefetch_related("lines")
        .order_by("-created_at")
    )


class Progress:
    """Where a deliverable line stands, in the shopper's words (the order page's badge)."""

    UNPAID = "unpaid"  # 待支付
    WAITING = "waiting"  # 待发货: paid, not started (a review holds it)
    DELIVERING = "delivering"  # 发货中: codes on their way
    DELIVERED = "delivered"  # 已发货: codes to reveal
    SUBMITTED = "submitted"  # 已提交: a top-up not yet with a supplier
    TOPPING_UP = "topping_up"  # 充值中: a supplier has (or is being sent) the order
    CREDITED = "credited"  # 已到账
    REFUNDED = "refunded"  # 已退款, with the reason and amount
    CANCELLED = "cancelled"  # 已取消


# Progress the shopper is still waiting on (the page polls itself meanwhile).
_IN_FLIGHT = {
    Progress.WAITING,
    Progress.DELIVERING,
    Progress.SUBMITTED,
    Progress.TOPPING_UP,
}


def _topup_of(line: OrderLine) -> TopUp | None:
    # Loaded by select_related; a line without one raises an AttributeError subclass.
    return getattr(line, "topup", None)


def line_progress(*, line: OrderLine, order: Order) -> str:
    """The shopper-facing progress of a deliverable line (no query: see order_get_for_user)."""
    LS = OrderLine.Status
    if line.status == LS.CANCELLED:
        return Progress.CANCELLED
    if line.status == LS.REFUNDED:
        return Progress.REFUNDED
    is_topup = line.delivery == Sku.Delivery.DIRECT_TOPUP
    if line.status == LS.DELIVERED:
        return Progress.CREDITED if is_topup else Progress.DELIVERED
    if line.status == LS.RESERVED:
        if order.status == Order.Status.PENDING:
            return Progress.UNPAID
        if order.status == Order.Status.CANCELLED:
            return Progress.CANCELLED
        return Progress.WAITING
    if not is_topup:
        return Progress.DELIVERING
    topup = _topup_of(line)
    if topup is None or topup.status == TopUp.Status.PENDING:
        return Progress.SUBMITTED
    if topup.status == TopUp.Status.SUCCEEDED:
        return Progress.CREDITED
    if topup.status == TopUp.Status.FAILED:
        # The refund is being written in the same transaction that ends the line.
        return Progress.TOPPING_UP
    return (
        Progress.TOPPING_UP
        if getattr(line, "topup_placed", False)
        else Progress.SUBMITTED
    )


@dataclass(frozen=True)
class LeafView:
    """A line that gets delivered (codes or a top-up), with its progress."""

    line: OrderLine
    progress: str
    # After-sales: the one-click refund on offer, until when unrevealed codes
    # may be refunded, the latest problem report, whether one may be filed.
    self_refund: SelfRefundOffer | None = None
    refund_until: dt.datetime | None = None
    report: ReportView | None = None
    can_report: bool = False

    @property
    def in_flight(self) -> bool:
        return self.progress in _IN_FLIGHT


@dataclass(frozen=True)
class LineView:
    """A line as the order page shows it: a bundle with its parts, or a line alone."""

    line: OrderLine
    leaves: list[LeafView]

    @property
    def parts(self) -> list[LeafView]:
        """A bundle's parts; empty for a line delivered alone."""
        return self.leaves if self.line.is_bundle else []


def order_page_context(*, order: Order, paying: str = "") -> dict[str, Any]:
    """Everything the order page needs; the lines come prefetched by order_get_for_user.

    `paying`: the gateway the shopper is back from, its answer still to come
    (orders/services/payment_return.py): "payment being confirmed", and the
    page polls itself with the marker kept.
    """
    pending = order.status == Order.Status.PENDING
    awaiting_notify = pending and (
        bool(paying) or payment_on_its_way(out_trade_no=order.number)
    )
    poll_url = reverse("orders:order-detail", args=[order.number])
    if pending and paying:
        poll_url += "?" + urlencode({"paying": paying})
    lines = list(order.lines.all())
    now = timezone.now()
    views = []
    for line in lines:
        if line.parent_id is not None:
            continue
        leaves = [p for p in lines if p.parent_id == line.id] if line.is_bundle else []
        views.append(
            LineView(
                line=line,
                leaves=[
                    _leaf_view(leaf, order=order, now=now) for leaf in leaves or [line]
                ],
            )
        )
    all_leaves = [leaf for view in views for leaf in view.leaves]
    paid = order.status in (Order.Status.PAID, Order.Status.FULFILLING)
    return {
        "order": order,
        "lines": views,
        "awaiting_notify": awaiting_notify,
        "poll_url": poll_url,
        # The page polls itself while something is still on its way.
        "in_flight": awaiting_notify
        or (paid and any(leaf.in_flight for leaf in all_leaves)),
        "has_codes": any(
            leaf.line.delivery == Sku.Delivery.CARD_CODE for leaf in all_leaves
        ),
        "has_topups": any(
            leaf.line.delivery == Sku.Delivery.DIRECT_TOPUP for leaf in all_leaves
        ),
        "revealed": {},
        "buy_again_url": buy_again_url(order=order, lines=lines),
        "report_kinds": ProblemReport.Kind.choices,
    }


def _leaf_view(line: OrderLine, *, order: Order, now: dt.datetime) -> LeafView:
    report = report_view(line=line)
    return LeafView(
        line=line,
        progress=line_progress(line=line, order=order),
        self_refund=self_refund_offer(line=line, order=order, now=now),
        refund_until=self_refund_window(line=line, now=now),
        report=report,
        can_report=line.status == OrderLine.Status.DELIVERED
        and (report is None or not report.is_open),
    )
