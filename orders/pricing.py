"""The one price quote: what a SKU and quantity cost, line by line.

The confirm page shows it and `order_place` writes it, so the shopper pays
exactly what they were shown. A bundle's price is split across its parts by the
operator's shares, or by face value when a share is missing (docs/BUNDLES.md);
the split adds up to the fen, so a part refunded alone returns its exact share.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _

from catalog.models import BundleItem, Sku
from config.lib.errors import DomainError
from config.lib.money import allocate, quantize


class QuoteError(DomainError):
    """A checkout input the shop cannot accept; `field` names the form field."""

    code = "quote_error"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


@dataclass(frozen=True)
class QuoteLine:
    sku: Sku
    quantity: int
    unit_price: Decimal
    amount: Decimal
    recharge_account: str = ""
    components: tuple[QuoteLine, ...] = ()

    @property
    def delivery(self) -> str:
        return self.sku.delivery


@dataclass(frozen=True)
class Quote:
    line: QuoteLine
    total: Decimal

    @property
    def leaves(self) -> tuple[QuoteLine, ...]:
        """The lines that get delivered: the bundle's parts, or the line itself."""
        return self.line.components or (self.line,)

    @property
    def recharge_account(self) -> str:
        return next((x.recharge_account for x in self.leaves if x.recharge_account), "")

    def matches(self, *, sku_code: str, quantity: int, recharge_account: str) -> bool:
        return (
            self.line.sku.code == sku_code
            and self.line.quantity == quantity
            and self.recharge_account == recharge_account
        )


def order_quote(
    *,
    sku: Sku,
    quantity: int,
    recharge_account: str = "",
    bundle_items: list[BundleItem] | None = None,
    unit_price: Decimal | None = None,
) -> Quote:
    """Price `quantity` of a SKU on sale, checking what the shopper entered.

    `bundle_items` (with component, product and platform loaded) may be passed to
    save the query; it is read here otherwise. `unit_price`: a price per unit
    the caller settled elsewhere (a partner's tier price); the SKU's own otherwise.
    Raises: QuoteError with the offending field (quantity, recharge_account, sku).
    """
    if not sku.min_per_order <= quantity <= sku.max_per_order:
        raise QuoteError(
            _("购买数量须在 %(min)d 到 %(max)d 之间")
            % {"min": sku.min_per_order, "max": sku.max_per_order},
            field="quantity",
            code="invalid_quantity",
        )
    account = recharge_account.strip()
    price = sku.price if unit_price is None else quantize(unit_price)
    total = quantize(price * quantity)
    if sku.delivery == Sku.Delivery.CARD_CODE:
        line = QuoteLine(sku=sku, quantity=quantity, unit_price=price, amount=total)
        return Quote(line=line, total=total)
    if sku.delivery == Sku.Delivery.DIRECT_TOPUP:
        _check_account(sku, account)
        line = QuoteLine(
            sku=sku,
            quantity=quantity,
            unit_price=price,
            amount=total,
            recharge_account=account,
        )
        return Quote(line=line, total=total)

    items = bundle_items if bundle_items is not None else bundle_items_for(sku)
    if not items or any(not item.component.is_active for item in items):
        raise QuoteError(_("该组合包暂不可购买"), field="sku", code="sku_unavailable")
    shares = allocate(total, _weights(items))
    parts = []
    for item, share in zip(items, shares, strict=True):
        part = item.component
        needs_account = part.delivery == Sku.Delivery.DIRECT_TOPUP
        if needs_account:
            _check_account(part, account)
        count = item.quantity * quantity
        parts.append(
            QuoteLine(
                sku=part,
                quantity=count,
                # The share per unit, for display; the amount is exact.
                unit_price=quantize(share / count),
                amount=share,
                recharge_account=account if needs_account else "",
            )
        )
    line = QuoteLine(
        sku=sku,
        quantity=quantity,
        unit_price=price,
        amount=total,
        components=tuple(parts),
    )
    return Quote(line=line, total=total)


def bundle_items_for(sku: Sku) -> list[BundleItem]:
    """A bundle's parts with what the quote and the order page need (one query)."""
    return list(
        BundleItem.objects.filter(bundle=sku)
        .select_related("component__product__platform", "component__validity_rule")
        .order_by("id")
    )


def _weights(items: list[BundleItem]) -> list[Decimal]:
    if all(item.share is not None for item in items):
        return [Decimal(item.share or 0) * item.quantity for item in items]
    return [item.component.face_value * item.quantity for item in items]


def _check_account(sku: Sku, account: str) -> None:
    platform = sku.product.platform
    if not account:
        raise QuoteError(
            _("请填写要充值的%(platform)s账号：%(hint)s")
            % {"platform": platform.name, "hint": platform.account_hint},
            field="recharge_account",
            code="recharge_account_required",
        )
    if not platform.is_valid_account(account):
        raise QuoteError(
            _("充值账号格式不正确：%(platform)s需要%(hint)s")
            % {"platform": platform.name, "hint": platform.account_hint},
            field="recharge_account",
            code="recharge_account_invalid",
        )
