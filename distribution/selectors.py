"""Reads for resellers and the commission ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from config.lib.money import ZERO
from distribution.models import CommissionEntry, Payout, Reseller

ST = CommissionEntry.State


@dataclass(frozen=True)
class Balances:
    """A reseller's commission balances, each a sum over the ledger."""

    pending: Decimal = ZERO
    available: Decimal = ZERO  # withdrawable now (may be negative after clawbacks)
    requested: Decimal = ZERO  # held by the open payout request
    paid: Decimal = ZERO


def _sum(condition: Q) -> Coalesce:
    return Coalesce(
        Sum("amount", filter=condition),
        Value(ZERO),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )


def reseller_balances(*, reseller_ids: Iterable[int]) -> dict[int, Balances]:
    """Balances of these resellers by id (one aggregate query; absent: all zero)."""
    ids = list(reseller_ids)
    rows = (
        CommissionEntry.objects.filter(reseller_id__in=ids)
        .values("reseller_id")
        .order_by("reseller_id")
        .annotate(
            pending=_sum(Q(state=ST.PENDING)),
            available=_sum(Q(state=ST.AVAILABLE, payout__isnull=True)),
            requested=_sum(Q(state=ST.AVAILABLE, payout__isnull=False)),
            paid=_sum(Q(state=ST.PAID)),
        )
    )
    found = {
        row["reseller_id"]: Balances(
            pending=row["pending"],
            available=row["available"],
            requested=row["requested"],
            paid=row["paid"],
        )
        for row in rows
    }
    return {reseller_id: found.get(reseller_id, Balances()) for reseller_id in ids}


def reseller_balance_get(*, reseller_id: int) -> Balances:
    """One reseller's balances."""
    return reseller_balances(reseller_ids=[reseller_id])[reseller_id]


def reseller_get_for_user(*, user_id: int) -> Reseller | None:
    """The user's reseller account, with its tier and partner account, if any."""
    # The partner account rides along (a LEFT JOIN): the dashboard decides on it
    # whether to show the webhook log, without a query of its own.
    return (
        Reseller.objects.select_related("tier", "partner_account")
        .filter(user_id=user_id)
        .first()
    )


def commission_entry_list_for_reseller(
    *, reseller_id: int
) -> QuerySet[CommissionEntry]:
    """A reseller's ledger, newest first, with each row's order line and order."""
    return (
        CommissionEntry.objects.filter(reseller_id=reseller_id)
        .select_related("order_line", "order_line__order")
        .order_by("-created_at", "-id")
    )


def payout_list_for_reseller(*, reseller_id: int) -> QuerySet[Payout]:
    """A reseller's payout requests, newest first."""
    return Payout.objects.filter(reseller_id=reseller_id).order_by(
        "-requested_at", "-id"
    )
