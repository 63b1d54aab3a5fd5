"""Reads for the reseller dashboard (/reseller/): KPIs, the daily chart, the downline, the ledger.

Every read takes the reseller's own id and filters on it: the views never pass
an id that came from a URL without it. What a reseller may see of an order is
decided here: its number masked to its ends, the buyer's e-mail masked to its
first character and domain, the product and the amounts; never a code, a
recharge account or a full address.

Definitions (docs: the ledger's balances are in distribution/models/ledger.py):

- a window (today, 7 days, 30 days) starts at local midnight, today counted;
- attributed sales: what the shopper paid for the orders credited to the
  reseller and paid in the window, less what has been refunded (or is being:
  a line's refunded amount grows when the refund is requested, as its
  commission is clawed back then), summed over each order's top-level lines (a
  bundle's parts are already in their bundle's line);
- commission in a window: the ledger rows written in it, net (void rows left
  out, clawbacks counted), split by where that money is now: pending,
  available, requested (held by the open payout request) and paid. The parts
  add up to the net.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from config.lib.exports import escape_formula
from config.lib.money import ZERO
from distribution.models import CommissionEntry, Payout, Reseller
from distribution.models.resellers import MAX_DEPTH
from orders.models import OrderLine

CE = CommissionEntry
ST = CE.State
WINDOW_DAYS = {"today": 1, "d7": 7, "d30": 30}
CHART_DAYS = 30
RECENT_ENTRIES = 10
RECENT_PAYOUTS = 10


def mask_email(email: str) -> str:
    """a***@example.com: enough to tell buyers apart, not to write to them."""
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_order_number(number: str) -> str:
    """KQ…7XK2QD: an order's number names it to support, so only its ends show."""
    if len(number) <= 8:
        return "…" + number[-2:]
    return f"{number[:2]}…{number[-6:]}"


def _money_sum(expression: str | Combinable, condition: Q) -> Coalesce:
    return Coalesce(
        Sum(expression, filter=condition),
        Value(ZERO),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )


# A line's takings: paid for it, less refunded (requested refunds included).
_LINE_NET = F("amount") - F("refunded_amount")


def _attributed_lines(credited: Q) -> QuerySet[OrderLine]:
    """Top-level lines of paid orders credited as `credited` says."""
    return OrderLine.objects.filter(
        credited, parent__isnull=True, order__paid_at__isnull=False
    )


def window_starts(now: dt.datetime) -> dict[str, dt.datetime]:
    """Each window's start: local midnight, `days - 1` days before today."""
    today = timezone.localdate(now)
    return {
        key: timezone.make_aware(
            dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time.min)
        )
        for key, days in WINDOW_DAYS.items()
    }


@dataclass(frozen=True)
class WindowKpi:
    key: str  # "today" | "d7" | "d30"
    since: dt.datetime
    orders: int = 0
    sales: Decimal = ZERO
    commission: Decimal = ZERO  # net: the four below add up to it
    pending: Decimal = ZERO
    available: Decimal = ZERO
    requested: Decimal = ZERO
    paid: Decimal = ZERO


def reseller_kpis(
    *, reseller_id: int, now: dt.datetime | None = None
) -> list[WindowKpi]:
    """Sales and commission for today, 7 and 30 days (two aggregate queries)."""
    starts = window_starts(now or timezone.now())
    oldest = min(starts.values())
    buckets = {
        "commission": ~Q(state=ST.VOID),
        "pending": Q(state=ST.PENDING),
        "available": Q(state=ST.AVAILABLE, payout__isnull=True),
        "requested": Q(state=ST.AVAILABLE, payout__isnull=False),
        "paid": Q(state=ST.PAID),
    }
    ledger = CommissionEntry.objects.filter(
        reseller_id=reseller_id, created_at__gte=oldest
    ).aggregate(
        **{
            f"{key}_{bucket}": _money_sum("amount", Q(created_at__gte=since) & q)
            for key, since in starts.items()
            for bucket, q in buckets.items()
        }
    )
    sales = (
        _attributed_lines(Q(order__attribution__reseller_id=reseller_id))
        .filter(order__paid_at__gte=oldest)
        .aggregate(
            **{
                f"{key}_{name}": aggregate
                for key, since in starts.items()
                for name, aggregate in (
                    (
                        "orders",
                        Count(
                            "order_id",
                            distinct=True,
                            filter=Q(order__paid_at__gte=since),
                        ),
                    ),
                    ("sales", _money_sum(_LINE_NET, Q(order__paid_at__gte=since))),
                )
            }
        )
    )
    return [
        WindowKpi(
            key=key,
            since=since,
            orders=sales[f"{key}_orders"],
            sales=sales[f"{key}_sales"],
            **{bucket: ledger[f"{key}_{bucket}"] for bucket in buckets},
        )
        for key, since in starts.items()
    ]


def commission_daily(
    *, reseller_id: int, days: int = CHART_DAYS, now: dt.datetime | None = None
) -> list[tuple[dt.date, Decimal]]:
    """Net commission written each local day, the last `days` days, oldest first (one query)."""
    today = timezone.localdate(now or timezone.now())
    first = today - dt.timedelta(days=days - 1)
    rows = (
        CommissionEntry.objects.filter(
            reseller_id=reseller_id,
            created_at__gte=timezone.make_aware(
                dt.datetime.combine(first, dt.time.min)
            ),
        )
        .exclude(state=ST.VOID)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
        .order_by("day")
    )
    by_day = {row["day"]: row["total"] for row in rows}
    return [
        (day, by_day.get(day, ZERO))
        for day in (first + dt.timedelta(days=n) for n in range(days))
    ]


def entry_list_for_reseller(*, reseller_id: int) -> QuerySet[CommissionEntry]:
    """The reseller's ledger, newest first, with each row's line, order and payout."""
    return (
        CommissionEntry.objects.filter(reseller_id=reseller_id)
        .select_related("order_line", "order_line__order")
        .order_by("-created_at", "-id")
    )


def entry_get_for_reseller(
    *, reseller_id: int, entry_id: int
) -> CommissionEntry | None:
    """One ledger row of this reseller (None for anyone else's), with its order."""
    return entry_list_for_reseller(reseller_id=reseller_id).filter(pk=entry_id).first()


def entry_related(*, entry: CommissionEntry) -> list[CommissionEntry]:
    """The rows that adjust an earn, or the earn a clawback adjusts, oldest first.

    Filtered on the entry's own reseller: a row only ever points at its own.
    """
    if entry.reverses_id is not None:
        q = Q(pk=entry.reverses_id) | Q(reverses_id=entry.reverses_id)
    else:
        q = Q(reverses_id=entry.pk)
    return list(
        CommissionEntry.objects.filter(q, reseller_id=entry.reseller_id)
        .exclude(pk=entry.pk)
        .order_by("created_at", "pk")
    )


def payout_list_for_reseller(*, reseller_id: int) -> QuerySet[Payout]:
    """The reseller's payout requests, newest first."""
    return Payout.objects.filter(reseller_id=reseller_id).order_by(
        "-requested_at", "-id"
    )


def payout_get_for_reseller(*, reseller_id: int, payout_id: int) -> Payout | None:
    """One payout request of this reseller (None for anyone else's)."""
    return (
        payout_list_for_reseller(reseller_id=reseller_id).filter(pk=payout_id).first()
    )


@dataclass
class DownlineMember:
    reseller: Reseller
    name: str
    level: int  # 1: a direct downline, 2: theirs
    orders: int = 0
    sales: Decimal = ZERO
    children: list[DownlineMember] = field(default_factory=list)


def member_name(reseller: Reseller) -> str:
    """What a reseller's upline sees of them: their shop name, else a masked e-mail."""
    return reseller.substore_name or mask_email(reseller.user.email)


def downline_for_reseller(*, reseller: Reseller) -> list[DownlineMember]:
    """The reseller's downline as a tree (at most MAX_DEPTH - 1 levels below), each
    member with their all-time attributed sales (two queries)."""
    below = Q(parent_id=reseller.pk)
    for hops in range(2, MAX_DEPTH):
        below |= Q(**{"__".join(["parent"] * hops) + "_id": reseller.pk})
    members = list(
        Reseller.objects.filter(below)
        .select_related("user")
        .order_by("depth", "created_at", "pk")
    )
    totals = {
        row["reseller_id"]: row
        for row in _attributed_lines(
            Q(order__attribution__reseller_id__in=[m.pk for m in members])
        )
        .values(reseller_id=F("order__attribution__reseller_id"))
        .order_by("reseller_id")
        .annotate(
            orders=Count("order_id", distinct=True),
            sales=_money_sum(_LINE_NET, Q()),
        )
    }
    nodes = {
        m.pk: DownlineMember(
            reseller=m,
            name=member_name(m),
            level=m.depth - reseller.depth,
            orders=totals.get(m.pk, {}).get("orders", 0),
            sales=totals.get(m.pk, {}).get("sales", ZERO),
        )
        for m in members
    }
    roots: list[DownlineMember] = []
    for node in nodes.values():  # depth order: a parent is placed before its children
        parent = nodes.get(node.reseller.parent_id or 0)
        (parent.children if parent is not None else roots).append(node)
    return roots


def ledger_csv_rows(entries: QuerySet[CommissionEntry]) -> Iterator[list[str]]:
    """One spreadsheet-safe row per entry (formula-like text gets an apostrophe).

    The header is the caller's (it is translated); the columns: id, time, kind,
    level, state, amount, rate, base, order (masked), buyer (masked), product,
    SKU, payout id.
    """
    for entry in entries.iterator(chunk_size=500):
        line = entry.order_line
        cells = [
            str(entry.pk),
            timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M"),
            str(entry.get_kind_display()),
            str(entry.level),
            str(entry.get_state_display()),
            f"{entry.amount:.2f}",
            f"{entry.rate:.4f}",
            f"{entry.base_amount:.2f}",
            mask_order_number(line.order.number),
            mask_email(line.order.email),
            line.product_name,
            line.sku_name,
            str(entry.payout_id or ""),
        ]
        yield [escape_formula(cell) for cell in cells]
