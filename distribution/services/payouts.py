"""Payouts: a reseller withdraws their available balance; an operator pays or refuses.

A request holds every available entry of the reseller (their `payout` points at
it), so the same money can never be asked for twice: the reseller's row lock
serialises one reseller's payout use cases, the entries are taken by a
conditional UPDATE (`payout IS NULL`), and the database allows one open request
per reseller. Approval turns the held entries paid; rejection releases them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import User
from distribution.errors import PayoutError
from distribution.locks import payout_lock_for_update, reseller_lock_for_update
from distribution.models import CommissionEntry, Payout, Reseller

CE = CommissionEntry
PS = Payout.Status

ERR_NOT_APPROVED = gettext_lazy("只有已通过审核的代理可以提现")
ERR_OPEN_PAYOUT = gettext_lazy("你已有一笔待审核的提现，请等待处理")
ERR_BELOW_MINIMUM = gettext_lazy("可提现余额 ¥%(available)s，满 ¥%(minimum)s 才能提现")
ERR_NOT_FOUND = gettext_lazy("找不到这笔提现")
ERR_DECIDED = gettext_lazy("这笔提现已经处理过了（%(status)s）")
ERR_REFERENCE_REQUIRED = gettext_lazy("请填写转账凭证号")
ERR_REASON_REQUIRED = gettext_lazy("请填写拒绝原因")
ERR_HELD_MISMATCH = gettext_lazy("提现金额与其冻结的佣金不符，请运行对账")


def payout_request(*, reseller_id: int, now: dt.datetime | None = None) -> Payout:
    """A reseller asks to withdraw their whole available balance.

    1. Lock the reseller; it must be approved, with no open request.
    2. The available entries (settled, not held) must add up to at least
       PAYOUT_MINIMUM; the request holds exactly those rows.
    Raises: PayoutError (not approved, a request open, below the minimum).
    Locks: Reseller, then its CommissionEntry rows (UPDATE).
    Idempotent: a second request while one is open is refused; held money is
    never available again until the request is rejected.
    """
    now = now or timezone.now()
    with transaction.atomic():
        reseller = reseller_lock_for_update(reseller_id=reseller_id)
        if reseller is None or reseller.status != Reseller.Status.APPROVED:
            raise PayoutError(str(ERR_NOT_APPROVED), code="not_approved")
        if Payout.objects.filter(reseller=reseller, status=PS.REQUESTED).exists():
            raise PayoutError(str(ERR_OPEN_PAYOUT), code="payout_open")
        rows = list(
            CommissionEntry.objects.filter(
                reseller=reseller, state=CE.State.AVAILABLE, payout__isnull=True
            ).values_list("pk", "amount")
        )
        available = sum((amount for _pk, amount in rows), Decimal(0))
        minimum: Decimal = settings.PAYOUT_MINIMUM
        if available < minimum or available <= 0:
            raise PayoutError(
                ERR_BELOW_MINIMUM % {"available": available, "minimum": minimum},
                code="below_minimum",
            )
        payout = Payout.objects.create(
            reseller=reseller, amount=available, requested_at=now
        )
        # Available rows change only here and in approve/reject, all under the
        # reseller's lock: every row read above is still there to hold.
        held = CommissionEntry.objects.filter(
            pk__in=[pk for pk, _amount in rows],
            state=CE.State.AVAILABLE,
            payout__isnull=True,
        ).update(payout=payout)
        if held != len(rows):
            raise PayoutError(str(ERR_HELD_MISMATCH), code="held_mismatch")
    return payout


def _decide(*, payout_id: int) -> Payout:
    """Lock the payout's reseller, then the payout (the lock order)."""
    reseller_id = (
        Payout.objects.filter(pk=payout_id)
        .values_list("reseller_id", flat=True)
        .first()
    )
    if reseller_id is None:
        raise PayoutError(str(ERR_NOT_FOUND), code="not_found")
    reseller_lock_for_update(reseller_id=reseller_id)
    payout = payout_lock_for_update(payout_id=payout_id)
    if payout is None:
        raise PayoutError(str(ERR_NOT_FOUND), code="not_found")
    return payout


def payout_approve(
    *,
    payout_id: int,
    actor: User,
    transfer_reference: str,
    now: dt.datetime | None = None,
) -> Payout:
    """An operator records the transfer that paid a request; its entries become paid.

    Raises: PayoutError (no reference; already rejected; held entries that do
    not add up to the amount, nothing written).
    Locks: Reseller → Payout → CommissionEntry.
    Idempotent: approving an approved payout returns it unchanged.
    """
    now = now or timezone.now()
    reference = transfer_reference.strip()[:100]
    if not reference:
        raise PayoutError(str(ERR_REFERENCE_REQUIRED), code="reference_required")
    with transaction.atomic():
        payout = _decide(payout_id=payout_id)
        if payout.status == PS.APPROVED:
            return payout
        if payout.status != PS.REQUESTED:
            raise PayoutError(
                ERR_DECIDED % {"status": payout.get_status_display()}, code="decided"
            )
        CommissionEntry.objects.filter(payout=payout, state=CE.State.AVAILABLE).update(
            state=CE.State.PAID, paid_at=now
        )
        paid = CommissionEntry.objects.filter(payout=payout).aggregate(s=Sum("amount"))[
            "s"
        ]
        if paid != payout.amount:
            raise PayoutError(str(ERR_HELD_MISMATCH), code="held_mismatch")
        payout.status = PS.APPROVED
        payout.transfer_reference = reference
        payout.decided_by = actor
        payout.decided_at = now
        payout.save(
            update_fields=["status", "transfer_reference", "decided_by", "decided_at"]
        )
    return payout


def payout_reject(
    *, payout_id: int, actor: User, reason: str, now: dt.datetime | None = None
) -> Payout:
    """An operator refuses a request, with the reason; its entries are available again.

    Raises: PayoutError (no reason; already approved).
    Locks: Reseller → Payout → CommissionEntry.
    Idempotent: rejecting a rejected payout returns it unchanged.
    """
    now = now or timezone.now()
    reason = reason.strip()[:200]
    if not reason:
        raise PayoutError(str(ERR_REASON_REQUIRED), code="reason_required")
    with transaction.atomic():
        payout = _decide(payout_id=payout_id)
        if payout.status == PS.REJECTED:
            return payout
        if payout.status != PS.REQUESTED:
            raise PayoutError(
                ERR_DECIDED % {"status": payout.get_status_display()}, code="decided"
            )
        CommissionEntry.objects.filter(payout=payout, state=CE.State.AVAILABLE).update(
            payout=None
        )
        payout.status = PS.REJECTED
        payout.reason = reason
        payout.decided_by = actor
        payout.decided_at = now
        payout.save(update_fields=["status", "reason", "decided_by", "decided_at"])
    return payout
