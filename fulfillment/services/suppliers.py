"""Supplier services: registering suppliers, mapping SKUs to their products, refreshing.

Priority is ascending everywhere (the lowest number is tried first); see
fulfillment.models.DEFAULT_SUPPLIER_PRIORITY. A supplier's signing secret goes
into the vault here and is opened only by fulfillment.suppliers.supplier_client.
Network calls (supplier_refresh) happen outside any transaction: the results are
gathered first and written afterwards in one short transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment import vault
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.suppliers import UnknownAdapterError, supplier_client
from fulfillment.suppliers.base import SupplierError, SupplierProductInfo

logger = logging.getLogger(__name__)

LAST_ERROR_MAX = 500
MONEY_PLACES = Decimal("0.01")

ERR_UNKNOWN_SKU = _("没有编码为 %(sku)s 的 SKU")
ERR_UNKNOWN_SUPPLIER = _("没有名为 %(name)s 的供应商")
ERR_BUNDLE_SKU = _("SKU %(sku)s 是组合包，不能对接供应商；请分别对接它的组成 SKU")
ERR_SECRET_REQUIRED = _("新建供应商必须提供密钥")
ERR_BAD_COST = _("进价必须是不小于 0、最多两位小数的金额")
ERR_BAD_PRODUCT_ID = _("供应商商品编号不能为空，最长 64 个字符")

# What a supplier product type can fulfil (supplier-protocol.md, product.list).
PRODUCT_TYPE_FOR_DELIVERY = {
    Sku.Delivery.DIRECT_TOPUP: "direct",
    Sku.Delivery.CARD_CODE: "card",
}


class SupplierConfigError(DomainError):
    code = "supplier_config"


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in exc.message_dict.items()
        )
    return " ".join(str(m) for m in exc.messages)


def supplier_register(
    *,
    name: str,
    base_url: str,
    app_key: str,
    secret: str | None,
    priority: int | None = None,
    enabled: bool = True,
    adapter: str = Supplier.Adapter.GENERIC,
) -> Supplier:
    """Create or update the supplier called `name`; a blank `secret` keeps the sealed one.

    `priority` None keeps the current one (the default on creation).
    Raises: SupplierConfigError (bad URL/name/key, no secret for a new supplier).
    Idempotent: by name; registering the same values again changes nothing but
    the secret's ciphertext (re-sealed under the newest vault key).
    """
    name = name.strip()
    values: dict[str, Any] = {
        "adapter": adapter,
        "base_url": base_url.strip().rstrip("/"),
        "app_key": app_key.strip(),
        "is_enabled": enabled,
    }
    if priority is not None:
        values["priority"] = priority
    candidate = Supplier(name=name, **values)
    try:
        candidate.full_clean(
            exclude=["secret_ciphertext", "secret_key_id"],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as exc:
        raise SupplierConfigError(_validation_message(exc)) from None
    if secret:
        values["secret_ciphertext"], values["secret_key_id"] = vault.seal_secret(secret)
    with transaction.atomic():
        if not secret and not Supplier.objects.filter(name=name).exists():
            raise SupplierConfigError(ERR_SECRET_REQUIRED)
        # update_or_create locks the existing row (SELECT ... FOR UPDATE).
        supplier, created = Supplier.objects.update_or_create(
            name=name, defaults=values
        )
    logger.info(
        "supplier %s %s (priority %d, enabled %s)",
        supplier.name,
        "created" if created else "updated",
        supplier.priority,
        supplier.is_enabled,
    )
    return supplier


def _clean_cost(cost: Decimal) -> Decimal:
    if not isinstance(cost, Decimal) or not cost.is_finite() or cost < 0:
        raise SupplierConfigError(ERR_BAD_COST)
    if cost != cost.quantize(MONEY_PLACES):
        raise SupplierConfigError(ERR_BAD_COST)
    return cost.quantize(MONEY_PLACES)


def supplier_map(
    *,
    sku_code: str,
    supplier_name: str,
    product_id: str,
    cost: Decimal,
    priority: int | None = None,
    enabled: bool | None = None,
) -> SupplierProduct:
    """Map a direct-top-up SKU (or a card SKU restocked from the supplier) to a supplier product.

    `priority` and `enabled` None keep the current values (the defaults on
    creation). A changed product id resets the mapping's last known supplier
    status and stock, which described the old product.
    Raises: SupplierConfigError (unknown SKU or supplier, bundle SKU, bad cost).
    Idempotent: one mapping per (supplier, SKU), updated in place.
    """
    sku = Sku.objects.filter(code=sku_code.strip()).first()
    if sku is None:
        raise SupplierConfigError(ERR_UNKNOWN_SKU % {"sku": sku_code})
    if sku.delivery == Sku.Delivery.BUNDLE:
        # A bundle is delivered through its components, each with its own mapping.
        raise SupplierConfigError(ERR_BUNDLE_SKU % {"sku": sku.code})
    supplier = Supplier.objects.filter(name=supplier_name.strip()).first()
    if supplier is None:
        raise SupplierConfigError(ERR_UNKNOWN_SUPPLIER % {"name": supplier_name})
    product_id = product_id.strip()
    if not product_id or len(product_id) > 64:
        raise SupplierConfigError(ERR_BAD_PRODUCT_ID)
    values: dict[str, Any] = {"product_id": product_id, "cost": _clean_cost(cost)}
    if priority is not None:
        values["priority"] = priority
    if enabled is not None:
        values["is_enabled"] = enabled
    candidate = SupplierProduct(supplier=supplier, sku=sku, **values)
    try:
        candidate.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise SupplierConfigError(_validation_message(exc)) from None
    with transaction.atomic():
        current = (
            SupplierProduct.objects.filter(supplier=supplier, sku=sku)
            .values_list("product_id", flat=True)
            .first()
        )
        if current != product_id:
            values.update(
                supplier_status=SupplierProduct.SupplierStatus.UNKNOWN,
                supplier_stock=SupplierProduct.SupplierStock.UNKNOWN,
                checked_at=None,
            )
        mapping, created = SupplierProduct.objects.update_or_create(
            supplier=supplier, sku=sku, defaults=values
        )
    logger.info(
        "supplier mapping %s -> %s:%s %s (cost %s, priority %d)",
        sku.code,
        supplier.name,
        mapping.product_id,
        "created" if created else "updated",
        mapping.cost,
        mapping.priority,
    )
    return mapping


@dataclass(frozen=True)
class _ProductState:
    status: str
    stock: str
    note: str = ""


def _product_state(
    mapping: SupplierProduct, listed: dict[str, SupplierProductInfo]
) -> _ProductState:
    info = listed.get(mapping.product_id)
    if info is None:
        return _ProductState(
            SupplierProduct.SupplierStatus.OFF,
            SupplierProduct.SupplierStock.UNKNOWN,
            f"{mapping.sku.code}: product {mapping.product_id} not listed",
        )
    wanted_type = PRODUCT_TYPE_FOR_DELIVERY.get(Sku.Delivery(mapping.sku.delivery))
    if info.type != wanted_type:
        # Ordering it would be refused: treat it as off for this SKU.
        return _ProductState(
            SupplierProduct.SupplierStatus.OFF,
            info.stock,
            f"{mapping.sku.code}: product {info.product_id} is a {info.type} product",
        )
    note = ""
    if info.price > mapping.cost:
        note = f"{mapping.sku.code}: price {info.price} above cost {mapping.cost}"
    return _ProductState(info.status, info.stock, note)


def supplier_refresh(*, supplier_id: int) -> Supplier:
    """Ask a supplier for its balance and product list and record what it said.

    1. Call `account.balance` and `product.list`, outside any transaction.
    2. In one short transaction: the balance (kept as last known when the call
       failed), each mapping's supplier status and stock, and last_error.
    A product the supplier does not list, or lists as the wrong type for the
    SKU, is recorded as off.
    Raises: SupplierConfigError (unknown supplier). Supplier failures are recorded, not raised.
    Idempotent: yes (it records the supplier's current answers).
    """
    supplier = Supplier.objects.filter(pk=supplier_id).first()
    if supplier is None:
        raise SupplierConfigError(ERR_UNKNOWN_SUPPLIER % {"name": supplier_id})
    mappings = list(supplier.products.select_related("sku").order_by("pk"))
    errors: list[str] = []
    balance: Decimal | None = None
    listed: dict[str, SupplierProductInfo] | None = None
    try:
        client = supplier_client(supplier)
    except (vault.VaultError, UnknownAdapterError) as exc:
        errors.append(str(exc))
    else:
        try:
            balance = client.balance()
        except SupplierError as exc:
            errors.append(f"balance: {exc.message}")
        try:
            listed = {p.product_id: p for p in client.products()}
        except SupplierError as exc:
            errors.append(f"products: {exc.message}")

    now = timezone.now()
    states = (
        {m.pk: _product_state(m, listed) for m in mappings}
        if listed is not None
        else {}
    )
    errors.extend(s.note for s in states.values() if s.note)
    last_error = "; ".join(errors)[:LAST_ERROR_MAX]
    with transaction.atomic():
        fields: dict[str, Any] = {"last_error": last_error, "updated_at": now}
        if balance is not None:
            fields.update(last_balance=balance, balance_checked_at=now)
        Supplier.objects.filter(pk=supplier.pk).update(**fields)
        for mapping in mappings:
            state = states.get(mapping.pk)
            if state is None:
                continue
            # Guarded by product_id: a mapping re-pointed meanwhile keeps its reset state.
            SupplierProduct.objects.filter(
                pk=mapping.pk, product_id=mapping.product_id
            ).update(
                supplier_status=state.status,
                supplier_stock=state.stock,
                checked_at=now,
                updated_at=now,
            )
    if errors:
        logger.warning("supplier %s refresh: %s", supplier.name, last_error)
    supplier.refresh_from_db()
    return supplier


def supplier_refresh_all() -> int:
    """Refresh every enabled supplier; returns how many answered without error.

    One supplier's failure never stops the others.
    """
    ok = 0
    ids = list(
        Supplier.objects.filter(is_enabled=True)
        .order_by("priority", "pk")
        .values_list("pk", flat=True)
    )
    for supplier_id in ids:
        try:
            supplier = supplier_refresh(supplier_id=supplier_id)
        except Exception:
            logger.exception("supplier %s refresh crashed", supplier_id)
            continue
        ok += not supplier.last_error
    return ok


def supplier_secrets_rotate(*, now: dt.datetime | None = None) -> int:
    """Re-seal supplier secrets not under the newest vault key; returns how many.

    Conditional UPDATE on the old ciphertext: a secret re-registered meanwhile is
    already under the newest key and is left alone.
    Idempotent: a second run finds nothing to do.
    """
    newest = vault.newest_key_id()
    now = now or timezone.now()
    done = 0
    stale = Supplier.objects.exclude(secret_key_id=newest).values_list(
        "pk", "secret_ciphertext", "secret_key_id"
    )
    for pk, ciphertext, key_id in stale:
        new_ciphertext, new_key_id = vault.reseal(ciphertext=ciphertext, key_id=key_id)
        done += Supplier.objects.filter(
            pk=pk, secret_ciphertext=ciphertext, secret_key_id=key_id
        ).update(
            secret_ciphertext=new_ciphertext,
            secret_key_id=new_key_id,
            updated_at=now,
        )
    if done:
        logger.info("vault rotation: %d supplier secrets re-sealed", done)
    return done
