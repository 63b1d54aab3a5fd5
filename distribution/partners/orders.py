"""Partner orders (SPEC §4.4): idempotent on out_trade_no, priced at the partner's
tier price, paid from the prepaid balance, replied to with the order as GET shows it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog import cache as catalog_cache
from config.lib.db import row_insert
from config.lib.money import format_amount
from distribution.locks import partner_account_lock_for_update
from distribution.models import (
    ApiKey,
    PartnerAccount,
    PartnerBalanceEntry,
    PartnerOrder,
)
from distribution.partners.balance import balance_of
from distribution.partners.errors import (
    InsufficientBalanceError,
    OutTradeNoReusedError,
    PartnerApiError,
    PartnerNotFoundError,
)
from distribution.partners.pricing import order_cost, partner_prices
from fulfillment.services import OutOfStockError
from orders.gateways.balance import NAME as BALANCE_GATEWAY
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, Payment
from orders.pricing import QuoteError, order_quote
from orders.services import CheckoutError, order_mark_paid, order_place

logger = logging.getLogger(__name__)

ERR_SKU = "unknown SKU, or not on sale now"
ERR_BALANCE = "the prepaid balance (%(balance)s) does not cover this order (%(total)s)"
ERR_REUSED = "out_trade_no was already used for a different order"
ERR_NOT_FOUND = "no order with this out_trade_no"
ERR_BELOW_COST = "this SKU cannot be sold at your price now; contact the shop"


@dataclass(frozen=True)
class OrderRequest:
    """A validated POST /api/v1/orders body."""

    out_trade_no: str
    sku: str
    quantity: int
    recharge_account: str = ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the order is for: the same request hashes the same.

        Canonical, not the raw bytes: key order and whitespace do not make a
        repeated request "different".
        """
        canonical = json.dumps(
            [self.sku, self.quantity, self.recharge_account.strip()],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Placed:
    partner_order: PartnerOrder
    created: bool


def partner_order_place(
    *, key: ApiKey, request: OrderRequest, ip_address: str | None = None
) -> Placed:
    """Place and pay a partner's order from its balance; the same request twice: one order.

    1. An order under this out_trade_no already: the same request returns it
       (created=False); another raises OutTradeNoReusedError.
    2. Price it at the partner's tier price and check the input (the quote).
    3. Lock the partner's account; look for the out_trade_no again (a twin
       request may have just placed it); the balance must cover the total.
    4. `order_place` as the partner's user at that price; refuse (and roll back)
       an order whose goods cost the shop more than the partner pays.
    5. Record the out_trade_no, debit the balance, write the balance Payment and
       hand the order to `order_mark_paid`, as a paid notify does: card codes are
       sold at once, top-ups go to the worker after commit.
    Raises: PartnerApiError (400: unknown SKU, bad quantity or account, out of
        stock, below cost), InsufficientBalanceError (402),
        OutTradeNoReusedError (409). Nothing is written on any of them.
    Locks: PartnerAccount, then what order_place and order_mark_paid lock
        (User → Order → CardCode).
    Idempotent: on (partner, out_trade_no).
    """
    account = key.account
    found = _replay(account=account, request=request)
    if found is not None:
        return Placed(partner_order=found, created=False)
    now = timezone.now()
    sku = catalog_cache.sku_on_sale(code=request.sku, now=now)
    if sku is None:
        raise PartnerApiError(ERR_SKU, code="sku_unavailable")
    price = partner_prices(reseller=account.reseller, skus=[sku])[sku.id]
    try:
        total = order_quote(
            sku=sku,
            quantity=request.quantity,
            recharge_account=request.recharge_account,
            unit_price=price,
        ).total
        with transaction.atomic():
            partner_account_lock_for_update(account_id=account.pk)
            found = _replay(account=account, request=request)
            if found is not None:
                return Placed(partner_order=found, created=False)
            balance = balance_of(account_id=account.pk)
            if balance < total:
                raise InsufficientBalanceError(
                    ERR_BALANCE
                    % {"balance": format_amount(balance), "total": format_amount(total)}
                )
            order = order_place(
                user=account.reseller.user,
                sku_code=sku.code,
                quantity=request.quantity,
                recharge_account=request.recharge_account,
                ip_address=ip_address,
                now=now,
                unit_price=price,
                partnered=True,  # its PartnerOrder follows (the webhooks look)
            )
            if order.total_amount != total or order_cost(order_id=order.pk) > total:
                logger.warning(
                    "partner %s: %s at %s is below cost; refused",
                    account.pk,
                    sku.code,
                    price,
                )
                raise PartnerApiError(ERR_BELOW_COST, code="below_cost")
            partner_order = row_insert(
                PartnerOrder(
                    account=account,
                    out_trade_no=request.out_trade_no,
                    order=order,
                    request_hash=request.fingerprint,
                    api_key=key,
                )
            )
            _pay(account=account, order=order, total=total)
    except QuoteError as exc:
        raise PartnerApiError(str(exc), code=exc.code) from None
    except OutOfStockError:
        raise PartnerApiError("out of stock", code="out_of_stock") from None
    except CheckoutError as exc:
        raise PartnerApiError(str(exc), code=exc.code) from None
    return Placed(partner_order=partner_order, created=True)


def _replay(*, account: PartnerAccount, request: OrderRequest) -> PartnerOrder | None:
    """The order this out_trade_no made, when the request is the same one."""
    found = (
        PartnerOrder.objects.select_related("order")
        .filter(account=account, out_trade_no=request.out_trade_no)
        .first()
    )
    if found is not None and found.request_hash != request.fingerprint:
        raise OutTradeNoReusedError(ERR_REUSED)
    return found


def _pay(*, account: PartnerAccount, order: Order, total: Decimal) -> None:
    """Debit the balance and pay the order with it (the caller holds the account lock)."""
    row_insert(
        PartnerBalanceEntry(
            account=account,
            kind=PartnerBalanceEntry.Kind.DEBIT,
            amount=-total,
            order=order,
            note=order.number,
        )
    )
    locked = order_lock_for_update_by_id(order_id=order.pk)
    assert locked is not None  # noqa: S101 (placed in this transaction)
    payment = row_insert(
        Payment(
            order=locked,
            gateway=BALANCE_GATEWAY,
            trade_no=locked.number,
            amount=total,
        )
    )
    order_mark_paid(order=locked, payment=payment, now=timezone.now())


def partner_order_get(*, account_id: int, out_trade_no: str) -> PartnerOrder:
    """This partner's order by its out_trade_no; another partner's is not found.

    Raises: PartnerNotFoundError.
    """
    found = (
        PartnerOrder.objects.select_related("order")
        .filter(account_id=account_id, out_trade_no=out_trade_no)
        .first()
    )
    if found is None:
        raise PartnerNotFoundError(ERR_NOT_FOUND)
    return found
