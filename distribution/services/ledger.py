"""The commission ledger's writes: earn on delivery, claw back on refund, settle.

The hooks are plain functions the order side calls inside its own transaction
(the Order and OrderLine rows already locked): `commission_on_line_delivered`
when a line becomes delivered, `commission_on_line_refunded` when a line's
refunded amount grows. Neither calls out nor enqueues anything. The rules of
the ledger are in distribution/models/ledger.py, the arithmetic in
distribution/commissions.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy

from config.lib.db import row_insert_once
from config.lib.money import CENT, ZERO
from distribution.commissions import (
    RATE_STEP,
    LevelShare,
    RuleCandidate,
    commission_clawback,
    commission_split,
    rule_pick,
)
from distribution.errors import CommissionError
from distribution.locks import commission_earns_lock_for_update
from distribution.models import (
    CommissionEntry,
    CommissionRule,
    OrderAttribution,
    Reseller,
)
from distribution.models.resellers import MAX_DEPTH
from orders.models import OrderLine

CE = CommissionEntry
SETTLE_BATCH = 500

ERR_REFUND_NOT_ON_LINE = gettext_lazy(
    "退款金额 ¥%(amount)s 超过了该明细已记录的退款 ¥%(refunded)s"
)


def _beneficiaries(
    attribution: OrderAttribution, buyer_id: int | None
) -> list[Reseller | None]:
    """Level 1 is the credited reseller, 2 its upline, 3 the next; None: nobody earns.

    Only approved resellers earn, and never on their own purchase: such a level
    is skipped (the others keep their levels).
    """
    chain: list[Reseller | None] = []
    current: Reseller | None = attribution.reseller
    while len(chain) < MAX_DEPTH:
        chain.append(current)
        current = current.parent if current is not None else None
    return [
        r if r is not None and r.is_approved and r.user_id != buyer_id else None
        for r in chain
    ]


def _margin_rate(
    attribution: OrderAttribution, *, order_total: Decimal
) -> Decimal | None:
    """A sub-store order's margin as a share of what the shopper paid, rounded
    down to RATE_STEP. Each line earns its exact share of the margin (to the
    fen); refunds claw it back at this rate like any commission. None: not a
    sub-store order."""
    if (
        attribution.channel != OrderAttribution.Channel.SUBSTORE
        or attribution.margin <= 0
        or order_total <= 0
    ):
        return None
    return min(attribution.margin / order_total, Decimal(1)).quantize(
        RATE_STEP, rounding=ROUND_DOWN
    )


def _rates(levels: list[Reseller | None], sku_id: int) -> list[Decimal]:
    """Each level's rate for this SKU and the earning reseller's tier (0: no rule)."""
    tier_ids = {r.tier_id for r in levels if r is not None and r.tier_id is not None}
    rules = [
        RuleCandidate(
            level=rule.level, rate=rule.rate, tier_id=rule.tier_id, sku_id=rule.sku_id
        )
        for rule in CommissionRule.objects.filter(
            Q(sku__isnull=True) | Q(sku_id=sku_id),
            Q(tier__isnull=True) | Q(tier_id__in=tier_ids),
            level__lte=len(levels),
        )
    ]
    rates = []
    for level, reseller in enumerate(levels, start=1):
        rule = (
            rule_pick(rules, level=level, tier_id=reseller.tier_id, sku_id=sku_id)
            if reseller is not None
            else None
        )
        rates.append(rule.rate if rule is not None else ZERO)
    return rates


def commission_on_line_delivered(
    *, order_line_id: int, now: dt.datetime | None = None
) -> list[CommissionEntry]:
    """Write each level's pending commission for a delivered line; returns the line's earns.

    1. Nothing for a line that is not delivered, a bundle's own line (the money
       is on its parts), or an order no reseller is credited with.
    2. Levels 1..3 up the credited reseller's tree; rates by the most specific
       rule for the level, the earner's tier and the SKU the shopper chose (a
       bundle's, for its parts: each part earns on its share of the price).
    3. Computed on what the shopper paid for the line and has not been refunded,
       rounded down to the fen; pending until now + COMMISSION_SETTLEMENT_DAYS.
    Runs in the caller's transaction. Locks: none (the unique key decides).
    Idempotent: one earn per (line, level), by INSERT … ON CONFLICT DO NOTHING.
    """
    now = now or timezone.now()
    line = (
        OrderLine.objects.select_related("order", "parent")
        .filter(pk=order_line_id)
        .first()
    )
    if line is None or line.is_bundle or line.status != OrderLine.Status.DELIVERED:
        return []
    attribution = (
        OrderAttribution.objects.select_related("reseller__parent__parent")
        .filter(order_id=line.order_id)
        .first()
    )
    if attribution is None:
        return []
    levels = _beneficiaries(attribution, line.order.user_id)
    sku_id = line.parent.sku_id if line.parent is not None else line.sku_id
    base = line.amount - line.refunded_amount
    rates = _rates(levels, sku_id)
    margin_rate = _margin_rate(attribution, order_total=line.order.total_amount)
    if margin_rate is not None:
        rates[0] = margin_rate  # a sub-store's owner earns their margin instead
    shares = commission_split(base=base, rates=rates)
    if margin_rate is not None:
        # The margin itself, to the fen (its rate, rounded to RATE_STEP, could
        # lose a fen: 5.00 of 105.00 is 4.7619 %); never past what is left.
        exact = (attribution.margin * base / line.order.total_amount).quantize(
            CENT, rounding=ROUND_DOWN
        )
        others = sum((share.amount for share in shares[1:]), ZERO)
        shares[0] = LevelShare(
            level=1, rate=shares[0].rate, amount=max(min(exact, base - others), ZERO)
        )
    available_at = now + dt.timedelta(days=settings.COMMISSION_SETTLEMENT_DAYS)
    for share, reseller in zip(shares, levels, strict=True):
        if reseller is None or share.amount <= 0:
            continue
        row_insert_once(
            CommissionEntry(
                reseller=reseller,
                order_line_id=line.pk,
                level=0
                if margin_rate is not None and share.level == 1
                else share.level,
                kind=CE.Kind.EARN,
                amount=share.amount,
                rate=share.rate,
                base_amount=base,
                state=CE.State.PENDING,
                created_at=now,
                available_at=available_at,
            )
        )
    return list(
        CommissionEntry.objects.filter(
            order_line_id=line.pk, kind=CE.Kind.EARN
        ).order_by("level")
    )


def commission_on_line_refunded(
    *,
    order_line_id: int,
    refunded_amount: Decimal,
    now: dt.datetime | None = None,
) -> list[CommissionEntry]:
    """Claw back the commission a refunded part of a line no longer earns; returns what it wrote.

    Call after the line's refunded amount has grown (refund_request does that
    first). What each level keeps is its commission on the line's amount less
    everything refunded so far, at the rate it earned (distribution/commissions.py):
    1. still pending, nothing left to keep: the earn and its voids → void;
    2. still pending, something left: a `void` entry (−) that settles with it;
    3. settled (available or paid): a `reverse` entry (−), available at once,
       which may take the available balance below zero.
    `refunded_amount` (this refund's part of the line) is checked against the
    line; the clawback follows the line's total, so calls may repeat or arrive
    in any order.
    Raises: CommissionError when the line has not recorded that much refund.
    Locks: the line's earn rows (CommissionEntry), after the caller's Order/OrderLine.
    Idempotent: a repeated call finds nothing left to claw back.
    """
    now = now or timezone.now()
    line = OrderLine.objects.get(pk=order_line_id)
    if refunded_amount <= 0 or refunded_amount > line.refunded_amount:
        raise CommissionError(
            ERR_REFUND_NOT_ON_LINE
            % {"amount": refunded_amount, "refunded": line.refunded_amount},
            code="refund_not_on_line",
        )
    base_left = line.amount - line.refunded_amount
    written: list[CommissionEntry] = []
    with transaction.atomic():
        for earn in commission_earns_lock_for_update(order_line_id=line.pk):
            if earn.state == CE.State.VOID:
                continue
            held = CommissionEntry.objects.filter(
                Q(pk=earn.pk) | Q(reverses=earn), ~Q(state=CE.State.VOID)
            ).aggregate(s=Sum("amount"))["s"]
            claw = commission_clawback(
                earned_net=held or ZERO, rate=earn.rate, base_left=base_left
            )
            if claw <= 0:
                continue
            if earn.state == CE.State.PENDING and claw == held:
                CommissionEntry.objects.filter(
                    Q(pk=earn.pk) | Q(reverses=earn), state=CE.State.PENDING
                ).update(state=CE.State.VOID, voided_at=now)
                continue
            pending = earn.state == CE.State.PENDING
            entry = CommissionEntry(
                reseller_id=earn.reseller_id,
                order_line_id=line.pk,
                level=earn.level,
                kind=CE.Kind.VOID if pending else CE.Kind.REVERSE,
                amount=-claw,
                rate=earn.rate,
                base_amount=base_left,
                state=CE.State.PENDING if pending else CE.State.AVAILABLE,
                reverses=earn,
                created_at=now,
                available_at=earn.available_at if pending else now,
                settled_at=None if pending else now,
            )
            entry.save()
            written.append(entry)
    return written


def commission_settle(*, now: dt.datetime | None = None) -> int:
    """Pending commission past its settlement date becomes available; returns the rows moved.

    Earns are claimed in batches with SKIP LOCKED (a line being refunded right
    now is left for the next run) and move together with their void entries,
    so a partial clawback never settles apart from what it reduces.
    Locks: CommissionEntry (earn rows, skip locked).
    Idempotent: only pending rows move (conditional UPDATE).
    """
    now = now or timezone.now()
    moved = 0
    while True:
        with transaction.atomic():
            earn_ids = list(
                CommissionEntry.objects.filter(
                    kind=CE.Kind.EARN, state=CE.State.PENDING, available_at__lte=now
                )
                .order_by("available_at", "pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:SETTLE_BATCH]
            )
            if not earn_ids:
                return moved
            moved += CommissionEntry.objects.filter(
                Q(pk__in=earn_ids) | Q(reverses_id__in=earn_ids),
                state=CE.State.PENDING,
            ).update(state=CE.State.AVAILABLE, settled_at=now)
        if len(earn_ids) < SETTLE_BATCH:
            return moved
