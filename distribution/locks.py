"""Row locks for resellers and the commission ledger.

Global lock order: User → Order → OrderLine → Sku/stock → CardCode → TopUp →
Reseller → CommissionEntry → Payout. Within one kind, rows are locked in primary
key order. Commission hooks run inside the order's transaction (Order and
OrderLine already locked by the caller) and lock only CommissionEntry rows;
payout use cases lock the Reseller first, so one reseller's payouts are
serialised while sales and settlement never wait on a reseller row.

A partner's PartnerAccount comes before all of these: a partner API order locks
it, then places and pays its order (distribution/partners/orders.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from distribution.models import CommissionEntry, PartnerAccount, Payout, Reseller


def resellers_lock_for_update(*, ids: Iterable[int]) -> dict[int, Reseller]:
    """Lock these resellers (pk order) and return them fresh, by id."""
    rows = Reseller.objects.filter(pk__in=set(ids)).order_by("pk").select_for_update()
    return {row.pk: row for row in rows}


def reseller_lock_for_update(*, reseller_id: int) -> Reseller | None:
    return resellers_lock_for_update(ids=[reseller_id]).get(reseller_id)


def commission_earns_lock_for_update(*, order_line_id: int) -> list[CommissionEntry]:
    """A line's earn rows (one per level), locked: refunds and settlement take turns."""
    return list(
        CommissionEntry.objects.filter(
            order_line_id=order_line_id, kind=CommissionEntry.Kind.EARN
        )
        .order_by("pk")
        .select_for_update()
    )


def payout_lock_for_update(*, payout_id: int) -> Payout | None:
    return (
        Payout.objects.filter(pk=payout_id).order_by("pk").select_for_update().first()
    )


def partner_account_lock_for_update(*, account_id: int) -> PartnerAccount | None:
    """Lock a partner's account: every spend of its prepaid balance holds it.

    Taken first, before anything `order_place` locks (User → Order → CardCode),
    and by nothing that already holds one of those: crediting the balance
    (refunds) never needs it, since a credit cannot overdraw.
    """
    return (
        PartnerAccount.objects.filter(pk=account_id)
        .order_by("pk")
        .select_for_update()
        .first()
    )
