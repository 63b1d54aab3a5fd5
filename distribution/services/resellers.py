"""Reseller use cases: apply, the operator's decisions, the downline tree, attribution.

The tree (SPEC §2): a reseller's `parent` is set once, from NULL, and never
changed, so everything above a bound reseller is fixed; only a root can gain an
upline. A binding locks the reseller, its downline and the new upline's chain
(pk order), re-reads them, and refuses a cycle or a tree deeper than MAX_DEPTH;
`depth` is stored on every row and checked by the database.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import User
from config.lib.db import row_insert_once
from config.lib.money import ZERO
from distribution.errors import DownlineError, ResellerError
from distribution.locks import reseller_lock_for_update, resellers_lock_for_update
from distribution.models import (
    CustomerBinding,
    OrderAttribution,
    Reseller,
    Tier,
)
from distribution.models.resellers import MAX_DEPTH
from distribution.substore import reseller_wholesale_price
from orders.models import Order
from orders.services.partnered import order_partnered_mark

logger = logging.getLogger(__name__)

RS = Reseller.Status

ERR_ALREADY_RESELLER = gettext_lazy("你已经是代理了")
ERR_SUSPENDED = gettext_lazy("你的代理资格已被停用，请联系客服")
ERR_REASON_REQUIRED = gettext_lazy("请填写原因")
ERR_NOT_FOUND = gettext_lazy("找不到这个代理")
ERR_BAD_MOVE = gettext_lazy("代理当前状态为“%(status)s”，不能执行此操作")
ERR_CYCLE = gettext_lazy("不能绑定：上级代理是该代理自己或其下级")
ERR_TOO_DEEP = gettext_lazy("不能绑定：代理层级最多 %(max)d 级")
ERR_HAS_PARENT = gettext_lazy("该代理已经有上级代理")
ERR_PARENT_NOT_APPROVED = gettext_lazy("上级代理尚未通过审核")
ERR_TREE_CHANGED = gettext_lazy("代理关系刚刚发生变化，请重试")


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ResellerError(str(ERR_REASON_REQUIRED), code="reason_required")
    return reason[:200]


def reseller_apply(
    *, user: User, note: str = "", now: dt.datetime | None = None
) -> Reseller:
    """A shopper applies to become a reseller; returns the application.

    A rejected applicant may apply again (back to `applied`).
    Raises: ResellerError when already approved or suspended.
    Idempotent: an open application is returned as it is.
    """
    now = now or timezone.now()
    with transaction.atomic():
        row_insert_once(
            Reseller(user=user, application_note=note.strip()[:500]), unique=["user"]
        )
        reseller = Reseller.objects.select_for_update().get(user=user)
        if reseller.status == RS.APPROVED:
            raise ResellerError(str(ERR_ALREADY_RESELLER), code="already_reseller")
        if reseller.status == RS.SUSPENDED:
            raise ResellerError(str(ERR_SUSPENDED), code="suspended")
        if reseller.status == RS.REJECTED:
            reseller.status = RS.APPLIED
            reseller.application_note = note.strip()[:500]
            reseller.status_reason = ""
            reseller.status_changed_by = None
            reseller.status_changed_at = now
            reseller.save(
                update_fields=[
                    "status",
                    "application_note",
                    "status_reason",
                    "status_changed_by",
                    "status_changed_at",
                    "updated_at",
                ]
            )
    return reseller


def _move(
    *,
    reseller_id: int,
    allowed: tuple[str, ...],
    target: str,
    actor: User,
    reason: str,
    now: dt.datetime,
    **fields: object,
) -> Reseller:
    """One status change under the reseller's row lock; a repeat is returned unchanged."""
    reseller = reseller_lock_for_update(reseller_id=reseller_id)
    if reseller is None:
        raise ResellerError(str(ERR_NOT_FOUND), code="not_found")
    if reseller.status == target:
        return reseller
    if reseller.status not in allowed:
        raise ResellerError(
            ERR_BAD_MOVE % {"status": reseller.get_status_display()}, code="bad_move"
        )
    values: dict[str, object] = {
        "status": target,
        "status_reason": reason,
        "status_changed_by": actor,
        "status_changed_at": now,
        **fields,
    }
    if target == RS.APPROVED and reseller.approved_at is None:
        values["approved_at"] = now  # the first approval (a CHECK requires it)
    for name, value in values.items():
        setattr(reseller, name, value)
    reseller.save(update_fields=[*values, "updated_at"])
    return reseller


def reseller_approve(
    *,
    reseller_id: int,
    actor: User,
    tier: Tier | None = None,
    now: dt.datetime | None = None,
) -> Reseller:
    """An operator approves an application (or lifts a suspension).

    1. applied | suspended → approved, with `tier` (else the reseller's own, else
       the default tier), who and when.
    2. A first approval binds the reseller under whoever referred the account
       at signup (CustomerBinding), when that keeps the tree legal; otherwise
       the reseller stays a root and the reason is logged.
    Raises: ResellerError when rejected or unknown.
    Locks: Reseller (its row; then the tree rows a binding needs).
    Idempotent: approving an approved reseller changes nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        before = reseller_lock_for_update(reseller_id=reseller_id)
        first_approval = before is not None and before.approved_at is None
        reseller = _move(
            reseller_id=reseller_id,
            allowed=(RS.APPLIED, RS.SUSPENDED),
            target=RS.APPROVED,
            actor=actor,
            reason="",
            now=now,
        )
        if tier is None and reseller.tier_id is None:
            tier = Tier.objects.filter(is_default=True).first()
        if tier is not None and reseller.tier_id != tier.pk:
            reseller.tier = tier
            reseller.save(update_fields=["tier", "updated_at"])
    if first_approval and reseller.parent_id is None:
        referrer_id = (
            CustomerBinding.objects.filter(user_id=reseller.user_id)
            .values_list("reseller_id", flat=True)
            .first()
        )
        if referrer_id is not None and referrer_id != reseller.pk:
            try:
                reseller = reseller_bind_parent(
                    reseller_id=reseller.pk, parent_id=referrer_id
                )
            except DownlineError as exc:
                logger.info(
                    "reseller %s approved without an upline: %s", reseller.pk, exc
                )
    return reseller


def reseller_reject(
    *, reseller_id: int, actor: User, reason: str, now: dt.datetime | None = None
) -> Reseller:
    """An operator rejects an application, with the reason the applicant sees.

    Raises: ResellerError (no reason; not an open application).
    Locks: Reseller. Idempotent: rejecting a rejected application changes nothing.
    """
    reason = _reason(reason)
    with transaction.atomic():
        return _move(
            reseller_id=reseller_id,
            allowed=(RS.APPLIED,),
            target=RS.REJECTED,
            actor=actor,
            reason=reason,
            now=now or timezone.now(),
        )


def reseller_suspend(
    *, reseller_id: int, actor: User, reason: str, now: dt.datetime | None = None
) -> Reseller:
    """An operator suspends a reseller: no new commission, no payout request.

    What is already on the ledger stays (a refund still claws back; an open
    payout is still decided by an operator).
    Raises: ResellerError (no reason; not approved).
    Locks: Reseller. Idempotent: suspending a suspended reseller changes nothing.
    """
    reason = _reason(reason)
    with transaction.atomic():
        return _move(
            reseller_id=reseller_id,
            allowed=(RS.APPROVED,),
            target=RS.SUSPENDED,
            actor=actor,
            reason=reason,
            now=now or timezone.now(),
        )


def _chain_ids(reseller_id: int) -> list[int]:
    """The reseller and its uplines, nearest first (at most MAX_DEPTH + 1 reads)."""
    chain = [reseller_id]
    while len(chain) <= MAX_DEPTH:
        parent_id = (
            Reseller.objects.filter(pk=chain[-1])
            .values_list("parent_id", flat=True)
            .first()
        )
        if parent_id is None:
            break
        chain.append(parent_id)
    return chain


def _downline(reseller_id: int) -> dict[int, int]:
    """Every reseller below this one, by id, with its distance (1 = a direct child)."""
    found: dict[int, int] = {}
    frontier = [reseller_id]
    for distance in range(1, MAX_DEPTH):
        frontier = list(
            Reseller.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)
        )
        found.update(dict.fromkeys(frontier, distance))
    return found


def reseller_bind_parent(*, reseller_id: int, parent_id: int) -> Reseller:
    """Put a reseller (and its downline) under an upline: the tree is set once.

    1. Read the reseller's downline and the upline's chain; lock all of them
       with the reseller (pk order) and read them again: a tree that moved in
       between is refused (retry).
    2. Refuse a reseller that already has another upline, an upline that is not
       approved, a cycle (the reseller is the upline or above it), and a tree
       deeper than MAX_DEPTH (the deepest of the reseller's downline counts).
    3. Set the parent and every moved row's depth.
    Raises: DownlineError. Locks: Reseller rows.
    Idempotent: binding to the same upline again changes nothing.
    """
    with transaction.atomic():
        downline = _downline(reseller_id)
        chain = _chain_ids(parent_id)
        locked = resellers_lock_for_update(ids=[reseller_id, *downline, *chain])
        if _downline(reseller_id) != downline or _chain_ids(parent_id) != chain:
            raise DownlineError(str(ERR_TREE_CHANGED), code="tree_changed")
        reseller, parent = locked.get(reseller_id), locked.get(parent_id)
        if reseller is None or parent is None:
            raise DownlineError(str(ERR_NOT_FOUND), code="not_found")
        if reseller.parent_id == parent_id:
            return reseller
        if reseller.parent_id is not None:
            raise DownlineError(str(ERR_HAS_PARENT), code="has_parent")
        if reseller_id in chain:
            raise DownlineError(str(ERR_CYCLE), code="cycle")
        if not parent.is_approved:
            raise DownlineError(
                str(ERR_PARENT_NOT_APPROVED), code="parent_not_approved"
            )
        depth = parent.depth + 1
        if depth + max(downline.values(), default=0) > MAX_DEPTH:
            raise DownlineError(ERR_TOO_DEEP % {"max": MAX_DEPTH}, code="too_deep")
        reseller.parent = parent
        reseller.depth = depth
        reseller.save(update_fields=["parent", "depth", "updated_at"])
        for distance in set(downline.values()):
            Reseller.objects.filter(
                pk__in=[pk for pk, d in downline.items() if d == distance]
            ).update(depth=depth + distance)
    return reseller


def _approved_by_code(referral_code: str) -> Reseller | None:
    code = referral_code.strip().upper()
    if not code:
        return None
    return Reseller.objects.filter(referral_code=code, status=RS.APPROVED).first()


def customer_bind(*, user: User, referral_code: str) -> CustomerBinding | None:
    """Remember which reseller brought a new account (signup through a referral link).

    An unknown or unapproved code, or the user's own code, binds nobody.
    Idempotent: the first binding stays; later calls return it.
    """
    reseller = _approved_by_code(referral_code)
    if reseller is not None and reseller.user_id != user.pk:
        row_insert_once(CustomerBinding(user=user, reseller=reseller))
    return CustomerBinding.objects.filter(user=user).first()


def order_attribute(
    *, order: Order, referral_code: str = "", substore_slug: str = ""
) -> OrderAttribution | None:
    """Credit an order to a reseller: its sub-store, else the referral code, else
    the reseller the buyer is bound to. None when nobody (or only the buyer) qualifies.

    Only approved resellers are credited, never the buyer's own account.
    Idempotent: the first attribution of an order stays.
    """
    CH = OrderAttribution.Channel
    candidates: list[tuple[Reseller | None, str]] = []
    if substore_slug:
        candidates.append(
            (
                Reseller.objects.filter(
                    substore_slug=substore_slug, status=RS.APPROVED
                ).first(),
                CH.SUBSTORE,
            )
        )
    candidates.append((_approved_by_code(referral_code), CH.REFERRAL_LINK))
    # A guest order (no account) is bound to nobody: its link or sub-store only.
    binding = (
        CustomerBinding.objects.select_related("reseller")
        .filter(user_id=order.user_id, reseller__status=RS.APPROVED)
        .first()
        if order.user_id is not None
        else None
    )
    candidates.append((binding.reseller if binding else None, CH.BOUND_CUSTOMER))
    for reseller, channel in candidates:
        if reseller is not None and reseller.user_id != order.user_id:
            margin = (
                _substore_margin(order=order, reseller=reseller)
                if channel == CH.SUBSTORE
                else ZERO
            )
            # The order first (the paid path's hooks look only at partnered orders).
            order_partnered_mark(order_id=order.pk)
            order.partnered = True
            row_insert_once(
                OrderAttribution(
                    order=order, reseller=reseller, channel=channel, margin=margin
                )
            )
            break
    return OrderAttribution.objects.filter(order=order).first()


def _substore_margin(*, order: Order, reseller: Reseller) -> Decimal:
    """What the shopper paid above the reseller's wholesale price (never below 0)."""
    top = (
        order.lines.filter(parent__isnull=True)
        .select_related("sku", "sku__product")
        .first()
    )
    if top is None:
        return ZERO
    cost = reseller_wholesale_price(reseller=reseller, sku=top.sku) * top.quantity
    return max(order.total_amount - cost, ZERO)
