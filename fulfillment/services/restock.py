"""Supplier cards (自动补货): refill a card SKU's vault from a supplier, exactly once.

A card-code SKU mapped to a supplier's card product (a SupplierProduct of a
card_code SKU) is restocked when its sellable stock falls below its low-stock
threshold (a threshold of 0 turns restocking off for that SKU):

1. `card_restock_check` (beat, every 2 minutes) opens a CardRestock for each
   such SKU that has none open, its customer_order_no fixed before any call. A
   partial unique constraint keeps one open restock per SKU, so two checks
   racing never buy twice. The same run queues the open restocks that are due
   (`next_poll_at`): polling needs no long task countdowns.
2. `card_restock_advance` takes one step in the three phases of a top-up
   (topups.py): claim the lease and, before placing, mark the restock
   `unknown`; call the supplier outside any transaction; lock the restock and
   record the answer as the protocol's error table says.
3. On `success` the adapter has opened the cards in memory. They are sealed into
   a new CodeBatch (source "supplier:<name>", the supplier's price per card) in
   the transaction that marks the restock succeeded: stored once, or not at all.

Card plaintext goes nowhere but the vault: not a log line, an exception, the
restock row or a timeline (restocks keep none; the adapter logs and records no
card fields). What a code holds is said at CARD_CODE_SEPARATOR.

Never buying twice outranks restocking. An unknown answer is queried under the
same number. Cards that cannot be opened were still paid for: they are queried
again (never bought elsewhere) and after RESTOCK_MAX_TRIES the restock stops,
open and flagged for an operator, so no later check buys for that SKU until
someone has looked. A definitive refusal (`rejected`) or a failed order ends
the restock; the next check tries the SKU's next mapping, skipping for
RESTOCK_RETRY_MINUTES the ones refused lately.

Lock order: CardRestock, then the vault rows its cards go into (a new batch);
no Order, line or TopUp lock is ever taken here.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from catalog.models import Sku
from config.lib.errors import DomainError
from config.lib.tasks import enqueue_or_leave_for_sweep
from fulfillment.models import CardRestock, SupplierProduct
from fulfillment.selectors import card_code_stock_counts, supplier_products_for_sku
from fulfillment.services.codes import card_codes_add, code_expiry_for_date
from fulfillment.services.supplier_calls import (
    RETRY_SAME_NUMBER,
    CallResult,
    backoff,
    lease,
    notify_url,
    placement_grace,
)
from fulfillment.suppliers import protocol as wire
from fulfillment.suppliers import supplier_client
from fulfillment.suppliers.base import SupplierCard, SupplierError, SupplierOrder

logger = logging.getLogger(__name__)

RS = CardRestock.Status
OPEN = list(CardRestock.OPEN_STATUSES)
Action = Literal["place", "query"]

# What a shopper needs to redeem a supplier card. Card products come with a card
# number (卡号) and a password (卡密); a platform that issues numbers asks for
# both, so the vault holds "卡号----卡密", the way Chinese card shops write the
# pair: one line and no whitespace, so it also survives an export and a
# re-import. A card without a number is its password alone.
CARD_CODE_SEPARATOR = "----"

# Defaults of the settings read below (the lead lists them in config/settings.py).
DEFAULT_MAX_PER_ORDER = 50  # RESTOCK_MAX_PER_ORDER: cards bought in one order
DEFAULT_MAX_TRIES = 10  # RESTOCK_MAX_TRIES: placements + queries before an operator
DEFAULT_RETRY_MINUTES = 30  # RESTOCK_RETRY_MINUTES: a refusing mapping rests this long


@dataclass(frozen=True)
class Plan:
    restock_id: int
    lease_until: dt.datetime
    action: Action


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, None) or default)


# --- Opening restocks (beat) ---------------------------------------------------


def card_restock_check(*, now: dt.datetime | None = None) -> int:
    """Open a restock for each card SKU running low, and queue the due ones.

    1. Active card-code SKUs with a threshold above 0, an enabled mapping of an
       enabled supplier, and no open restock.
    2. Sellable stock below the threshold: take the first mapping in fail-over
       order that did not refuse a restock in the last RESTOCK_RETRY_MINUTES.
    3. Create the restock, its number fixed now; its first step is queued after
       commit (and swept a lease later should the broker be down).
    4. Queue every open restock whose next look is due.
    Returns how many restocks were opened.
    Idempotent: an open restock blocks another for its SKU (database constraint).
    """
    now = now or timezone.now()
    mapped = SupplierProduct.objects.filter(
        sku=OuterRef("pk"), is_enabled=True, supplier__is_enabled=True
    )
    open_restock = CardRestock.objects.filter(sku=OuterRef("pk"), status__in=OPEN)
    skus = list(
        Sku.objects.filter(
            is_active=True,
            delivery=Sku.Delivery.CARD_CODE,
            low_stock_threshold__gt=0,
        )
        .filter(Exists(mapped))
        .exclude(Exists(open_restock))
        .order_by("id")
    )
    stock = card_code_stock_counts(sku_ids=[s.id for s in skus], now=now)
    opened = 0
    for sku in skus:
        if stock[sku.id] >= sku.low_stock_threshold:
            continue
        if _restock_open(sku=sku, now=now) is not None:
            opened += 1
    _sweep(now=now)
    return opened


def _restock_quantity(sku: Sku) -> int:
    size = _setting("RESTOCK_BATCH_SIZE", 2 * sku.low_stock_threshold)
    return max(1, min(size, _setting("RESTOCK_MAX_PER_ORDER", DEFAULT_MAX_PER_ORDER)))


def _mapping_for(*, sku_id: int, now: dt.datetime) -> SupplierProduct | None:
    """The SKU's first mapping in fail-over order that has not refused it lately."""
    since = now - dt.timedelta(
        minutes=_setting("RESTOCK_RETRY_MINUTES", DEFAULT_RETRY_MINUTES)
    )
    resting = set(
        CardRestock.objects.filter(
            sku_id=sku_id,
            status__in=[RS.REJECTED, RS.FAILED],
            finished_at__gte=since,
        ).values_list("supplier_product_id", flat=True)
    )
    return next(
        (m for m in supplier_products_for_sku(sku_id=sku_id) if m.id not in resting),
        None,
    )


def _restock_open(*, sku: Sku, now: dt.datetime) -> CardRestock | None:
    mapping = _mapping_for(sku_id=sku.id, now=now)
    if mapping is None:
        logger.info("card sku %s is low; every supplier refused it lately", sku.code)
        return None
    restock = CardRestock(
        sku=sku,
        supplier=mapping.supplier,
        supplier_product=mapping,
        product_id=mapping.product_id,
        # Fixed before any call and reused by every retry of this restock.
        customer_order_no=f"KQR{sku.id}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}",
        quantity=_restock_quantity(sku),
        unit_cost=mapping.cost,
        # If the task is lost (broker down), the sweep starts it a lease later.
        next_poll_at=now + lease(),
    )
    restock.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            restock.save()
            transaction.on_commit(partial(card_restock_dispatch, restock_id=restock.id))
    except IntegrityError:
        # Another check opened one for this SKU a moment ago: that one buys.
        return None
    logger.info(
        "card restock %s opened: %s x%d from %s:%s at %s",
        restock.customer_order_no,
        sku.code,
        restock.quantity,
        mapping.supplier.name,
        mapping.product_id,
        mapping.cost,
    )
    return restock


def card_restock_dispatch(*, restock_id: int) -> bool:
    """Hand a restock step to the worker queue; a broker outage leaves it to the sweep."""
    from fulfillment.tasks import card_restock_advance_task

    return enqueue_or_leave_for_sweep(card_restock_advance_task, restock_id=restock_id)


def _sweep(*, now: dt.datetime, limit: int = 200) -> int:
    ids = list(
        CardRestock.objects.filter(status__in=OPEN, next_poll_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_poll_at")
        .values_list("id", flat=True)[:limit]
    )
    for restock_id in ids:
        card_restock_dispatch(restock_id=restock_id)
    return len(ids)


# --- One step: claim, call, record --------------------------------------------


def card_restock_advance(*, restock_id: int, now: dt.datetime | None = None) -> str:
    """Take one step of a restock. Returns a word for logs and tests.

    Idempotent: a restock another worker holds, or one already finished, is left
    alone ("busy"); a restock is only ever placed under its own number.
    """
    now = now or timezone.now()
    plan = _claim(restock_id=restock_id, now=now)
    if plan is None:
        return "busy"
    result = _call(plan)
    return _record(plan, result, now=timezone.now())


def _claim(*, restock_id: int, now: dt.datetime) -> Plan | None:
    lease_until = now + lease()
    with transaction.atomic():
        claimed = (
            CardRestock.objects.filter(pk=restock_id, status__in=OPEN)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=lease_until)
        )
        if claimed != 1:
            return None
        restock = CardRestock.objects.get(pk=restock_id)
        if restock.status != RS.NEW:
            CardRestock.objects.filter(pk=restock_id).update(queries=F("queries") + 1)
            return Plan(restock_id, lease_until, "query")
        # Marked before the call: a worker dying mid-call leaves a restock that
        # the next one queries before it places again.
        CardRestock.objects.filter(pk=restock_id).update(
            status=RS.UNKNOWN,
            placements=F("placements") + 1,
            placement_deadline=restock.placement_deadline or now + placement_grace(),
        )
    return Plan(restock_id, lease_until, "place")


def _call(plan: Plan) -> CallResult:
    """Talk to the supplier. No transaction is open here; cards stay in memory."""
    restock = CardRestock.objects.select_related("supplier").get(pk=plan.restock_id)
    result = CallResult()
    client = supplier_client(restock.supplier)
    try:
        if plan.action == "place":
            result.order = client.place_card(
                product_id=restock.product_id,
                customer_order_no=restock.customer_order_no,
                buy_num=restock.quantity,
                notify_url=notify_url(restock.supplier),
            )
        else:
            result.order = client.query(customer_order_no=restock.customer_order_no)
            result.not_found = result.order is None
    except SupplierError as exc:
        result.error = exc
    return result


def _record(plan: Plan, result: CallResult, *, now: dt.datetime) -> str:
    with transaction.atomic():
        restock = (
            CardRestock.objects.select_for_update(of=("self",))
            .select_related("sku", "supplier")
            .get(pk=plan.restock_id)
        )
        if restock.lease_until != plan.lease_until or not restock.is_open:
            # Our lease ran out and another worker took over, or an operator closed it.
            return "superseded"
        if result.order is not None:
            outcome = _apply_order(restock, result.order, now=now)
        elif result.not_found:
            outcome = _apply_not_found(restock, now=now)
        else:
            assert result.error is not None  # noqa: S101 (one of the three is always set)
            outcome = _apply_error(restock, result.error, action=plan.action, now=now)
    logger.info("card restock %s: %s", restock.customer_order_no, outcome)
    return outcome


def _update(restock: CardRestock, **fields: object) -> None:
    CardRestock.objects.filter(pk=restock.pk).update(**fields)
    for name, value in fields.items():
        setattr(restock, name, value)


def _wait(restock: CardRestock, *, now: dt.datetime, when: dt.datetime) -> None:
    """Let go of the lease and say when to look again; after too many tries, stop."""
    tries = restock.placements + restock.queries
    if tries >= _setting("RESTOCK_MAX_TRIES", DEFAULT_MAX_TRIES):
        _update(restock, lease_until=None, next_poll_at=None, needs_attention=True)
        logger.warning(
            "card restock %s for %s stopped after %d tries; an operator must "
            "settle it with supplier %s (no card is bought again meanwhile): %s",
            restock.customer_order_no,
            restock.sku.code,
            tries,
            restock.supplier.name,
            restock.last_error,
        )
        return
    _update(restock, lease_until=None, next_poll_at=when)
    if when <= now:
        transaction.on_commit(partial(card_restock_dispatch, restock_id=restock.id))


def _finish(restock: CardRestock, *, now: dt.datetime, **fields: object) -> None:
    _update(restock, lease_until=None, next_poll_at=None, finished_at=now, **fields)


def _apply_order(
    restock: CardRestock, order: SupplierOrder, *, now: dt.datetime
) -> str:
    """The supplier reported the order. Caller holds the restock's lock."""
    _update(
        restock,
        supplier_order_id=order.order_id[:64],
        supplier_state=order.state,
    )
    if order.state == wire.SUCCESS:
        if len(order.cards) != restock.quantity:
            # Charged for cards we did not get: ask again, never buy elsewhere.
            missing = SupplierError(
                f"successful order carries {len(order.cards)} of "
                f"{restock.quantity} cards",
                outcome="unknown",
            )
            return _apply_error(restock, missing, action="query", now=now)
        return _seal_cards(restock, order, now=now)
    if order.state == wire.FAILED:
        # The supplier refunded it: nothing bought; the next check may try again.
        _finish(restock, now=now, status=RS.FAILED, last_error=order.fail_reason[:200])
        logger.warning(
            "card restock %s failed at supplier %s: %s",
            restock.customer_order_no,
            restock.supplier.name,
            order.fail_reason[:200],
        )
        return "failed"
    if restock.status != RS.PLACED:
        _update(restock, status=RS.PLACED)
    _wait(restock, now=now, when=now + backoff(restock.queries, base=3, cap=300))
    return "waiting"


def card_code_text(card: SupplierCard) -> str:
    """The plaintext a card becomes in the vault (see CARD_CODE_SEPARATOR)."""
    if card.number:
        return f"{card.number}{CARD_CODE_SEPARATOR}{card.secret}"
    return card.secret


def _cards_expiry(cards: Sequence[SupplierCard]) -> dt.datetime | None:
    """The batch expires with its first-expiring card; unreadable dates are ignored."""
    days = []
    for card in cards:
        try:
            days.append(dt.date.fromisoformat(card.expires[:10]))
        except ValueError:
            continue
    return code_expiry_for_date(min(days)) if days else None


def _seal_cards(restock: CardRestock, order: SupplierOrder, *, now: dt.datetime) -> str:
    """Seal the opened cards into a new batch, in the transaction that ends the restock."""
    price = order.price.quantize(Decimal("0.01"))
    if price < 0:
        price = restock.unit_cost
    if price != restock.unit_cost:
        logger.warning(
            "card restock %s: supplier %s charged %s per card, the mapping says %s",
            restock.customer_order_no,
            restock.supplier.name,
            price,
            restock.unit_cost,
        )
    try:
        stored = card_codes_add(
            sku=restock.sku,
            codes=[card_code_text(card) for card in order.cards],
            source=f"supplier:{restock.supplier.name}"[:100],
            cost_price=price,
            expires_at=_cards_expiry(order.cards),
            note=f"自动补货 {restock.customer_order_no} 供应商单号 {order.order_id}"[
                :200
            ],
        )
    except DomainError as exc:
        # Paid for but not stored. The supplier keeps the cards under this
        # number, so "query again" fetches them once an operator fixed the cause.
        # (Import errors name a line or a rule, never a code.)
        _update(
            restock,
            status=RS.PLACED,
            last_error=f"cards not stored: {exc}"[:200],
            lease_until=None,
            next_poll_at=None,
            needs_attention=True,
        )
        logger.warning(
            "card restock %s: %d paid cards could not be stored (%s); "
            "flagged for an operator",
            restock.customer_order_no,
            len(order.cards),
            exc,
        )
        return "attention"
    short = stored.imported != restock.quantity
    note = (
        f"stored {stored.imported} of {restock.quantity} cards "
        f"(duplicates {stored.duplicates}, rejected {stored.rejected})"
        if short
        else ""
    )
    _finish(
        restock,
        now=now,
        status=RS.SUCCEEDED,
        batch=stored.batch,
        unit_cost=price,
        last_error=note,
        error_code=None,
        needs_attention=short,
    )
    if short:
        logger.warning("card restock %s: %s", restock.customer_order_no, note)
    return "succeeded"


def _apply_not_found(restock: CardRestock, *, now: dt.datetime) -> str:
    """3003 on a query: before the placement deadline the order may just not show yet."""
    if restock.placement_deadline and now >= restock.placement_deadline:
        # Never created: placing again under the same number is safe (protocol).
        _update(restock, status=RS.NEW, placement_deadline=None)
        _wait(restock, now=now, when=now)
        return "place_again"
    _wait(restock, now=now, when=now + backoff(restock.queries, base=2, cap=30))
    return "waiting"


def _apply_error(
    restock: CardRestock, error: SupplierError, *, action: Action, now: dt.datetime
) -> str:
    text = f"{error.code or ''} {error.message}".strip()[:200]
    if error.outcome == "retry_later" or error.code in RETRY_SAME_NUMBER:
        # Nothing changed at the supplier: the same request, later.
        later = now + dt.timedelta(seconds=error.retry_after or 0)
        fields: dict[str, object] = {"last_error": text, "error_code": error.code}
        if action == "place":
            fields["status"] = RS.NEW  # this number was never created
        _update(restock, **fields)
        tries = restock.placements + restock.queries
        _wait(restock, now=now, when=max(later, now + backoff(tries, base=1, cap=60)))
        return "retry_later"
    # Only a refused placement proves that no order exists. A refused query
    # (app disabled, bad signature) or a 3002 (the number exists with another
    # biz) leaves the order unknown.
    if (
        action == "place"
        and error.outcome == "rejected"
        and error.code != wire.ORDER_NO_REUSED
    ):
        _finish(
            restock, now=now, status=RS.REJECTED, last_error=text, error_code=error.code
        )
        logger.warning(
            "card restock %s refused by supplier %s: %s",
            restock.customer_order_no,
            restock.supplier.name,
            text,
        )
        return "rejected"
    # Unknown (timeout, busy, corrupt or missing cards...): the order may exist
    # and may be paid for. Query under the same number; never buy elsewhere.
    _update(
        restock,
        status=RS.PLACED if restock.status == RS.PLACED else RS.UNKNOWN,
        last_error=text,
        error_code=error.code,
    )
    _wait(restock, now=now, when=now + backoff(restock.queries, base=1, cap=120))
    return "unknown"
