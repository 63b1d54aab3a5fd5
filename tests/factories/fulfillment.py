from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from django.utils import timezone

from catalog.models import Sku
from fulfillment.models import (
    CardCode,
    Supplier,
    SupplierAttempt,
    SupplierProduct,
    TopUp,
    TopUpEvent,
)
from fulfillment.services import (
    ImportResult,
    card_codes_import,
    supplier_map,
    supplier_register,
)
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory


def make_codes(n: int, prefix: str = "CODE") -> list[str]:
    return [f"{prefix}{secrets.token_hex(8).upper()}" for _ in range(n)]


def stock_codes(sku: Sku, codes: list[str] | int, **kwargs: object) -> ImportResult:
    """Import codes into the vault through the real service (the only way codes exist)."""
    if isinstance(codes, int):
        codes = make_codes(codes)
    return card_codes_import(
        sku=sku,
        content="\n".join(codes).encode(),
        file_name="codes.txt",
        actor=None,
        **kwargs,
    )


def available(sku: Sku) -> int:
    return CardCode.objects.filter(sku=sku, status=CardCode.Status.AVAILABLE).count()


def supplier_make(
    name: str = "sim",
    *,
    base_url: str = "http://127.0.0.1:1",
    app_key: str = "app",
    secret: str = "s3cret-signing-key",  # noqa: S107 - a test credential
    priority: int | None = None,
    enabled: bool = True,
) -> Supplier:
    """Register a supplier through the real service (so its secret is sealed)."""
    return supplier_register(
        name=name,
        base_url=base_url,
        app_key=app_key,
        secret=secret,
        priority=priority,
        enabled=enabled,
    )


def supplier_for_simulator(
    simulator: Any, name: str = "sim", **kwargs: Any
) -> Supplier:
    """A supplier pointing at a running `supplier_simulator`."""
    return supplier_make(
        name,
        base_url=simulator.base_url,
        app_key=simulator.app_key,
        secret=simulator.secret,
        **kwargs,
    )


def mapping_make(
    sku: Sku,
    supplier: Supplier,
    product_id: str = "P-TX-VIP-MONTH",
    *,
    cost: Decimal | str = "24.00",
    priority: int | None = None,
    enabled: bool | None = None,
) -> SupplierProduct:
    """Map a SKU to a supplier product through the real service."""
    return supplier_map(
        sku_code=sku.code,
        supplier_name=supplier.name,
        product_id=product_id,
        cost=Decimal(cost),
        priority=priority,
        enabled=enabled,
    )


def supplier_ready(
    mapping: SupplierProduct, *, balance: str = "10000.00"
) -> SupplierProduct:
    """Mark a mapping as its last supplier refresh would: product on, stock ok, funded.

    Checkout sells a top-up only while some supplier can take it
    (fulfillment.selectors.topup_capacity_by_sku); tests that are not about
    that refresh say so here instead of calling the supplier.
    """
    SupplierProduct.objects.filter(pk=mapping.pk).update(
        supplier_status=SupplierProduct.SupplierStatus.ON,
        supplier_stock=SupplierProduct.SupplierStock.OK,
    )
    Supplier.objects.filter(pk=mapping.supplier_id).update(
        last_balance=Decimal(balance)
    )
    mapping.refresh_from_db()
    return mapping


# --- Top-ups as rows (admin and health tests) -----------------------------------
# The engine makes these from a paid order (tests/fulfillment/topups/conftest.py);
# pages and reads only need the rows, in whatever state the test names.


def topup_make(
    sku: Sku,
    *,
    user: Any = None,
    account: str = "123456789",
    status: str = "waiting",
    amount: Decimal | str = "28.00",
    age: dt.timedelta = dt.timedelta(0),
    deadline_in: dt.timedelta = dt.timedelta(minutes=30),
    **fields: Any,
) -> TopUp:
    """A paid order with one top-up line and its TopUp, created `age` ago."""
    from orders.models import Order, OrderLine
    from tests.factories.accounts import UserFactory

    user = user or UserFactory()
    created = timezone.now() - age
    total = Decimal(amount)
    order = Order.objects.create(
        user=user,
        email=user.email,
        status=Order.Status.FULFILLING,
        total_amount=total,
        paid_amount=total,
        expires_at=created + dt.timedelta(minutes=15),
        paid_at=created,
    )
    line = OrderLine.objects.create(
        order=order,
        sku=sku,
        delivery=Sku.Delivery.DIRECT_TOPUP,
        product_name=sku.product.name,
        sku_name=sku.name,
        recharge_account=account,
        quantity=1,
        unit_price=total,
        amount=total,
        status=OrderLine.Status.DELIVERING,
    )
    topup = TopUp.objects.create(
        order_line=line,
        sku=sku,
        recharge_account=account,
        quantity=1,
        status=status,
        deadline_at=created + deadline_in,
        **fields,
    )
    TopUp.objects.filter(pk=topup.pk).update(created_at=created)
    topup.created_at = created
    return topup


def attempt_make(
    topup: TopUp,
    mapping: SupplierProduct,
    *,
    status: str = "placed",
    number: str | None = None,
    **fields: Any,
) -> SupplierAttempt:
    return SupplierAttempt.objects.create(
        topup=topup,
        supplier=mapping.supplier,
        supplier_product=mapping,
        customer_order_no=number or f"KQT{topup.pk}-{secrets.token_hex(4)}",
        product_id=mapping.product_id,
        unit_cost=mapping.cost,
        status=status,
        **fields,
    )


def request_event_make(
    topup: TopUp,
    supplier: Supplier,
    *,
    latency_ms: int | None = 100,
    ok: bool = True,
    ago: dt.timedelta = dt.timedelta(0),
    attempt: SupplierAttempt | None = None,
    method: str = "order.direct.add",
    **fields: Any,
) -> TopUpEvent:
    """One request on a top-up's timeline, made `ago` before now."""
    event = TopUpEvent.objects.create(
        topup=topup,
        attempt=attempt,
        supplier=supplier,
        kind=TopUpEvent.Kind.REQUEST,
        method=method,
        latency_ms=latency_ms,
        ok=ok,
        http_status=fields.pop("http_status", 200),
        **fields,
    )
    if ago:
        at = timezone.now() - ago
        TopUpEvent.objects.filter(pk=event.pk).update(created_at=at)
        event.created_at = at
    return event


def qq_topup_on_sale(*, cost: str = "20.00", **product_kwargs: Any) -> Sku:
    """A QQ direct top-up (TX-DIRECT, 28.00 for 30.00 of face value) that a ready
    supplier can take: checkout sells top-ups only then."""

    platform = PlatformFactory(name="腾讯视频", slug="tencent", account_rule="qq")
    sku: Sku = SkuFactory(
        product=ProductFactory(platform=platform, **product_kwargs),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("28.00"),
        face_value=Decimal("30.00"),
    )
    supplier_ready(mapping_make(sku, supplier_make("sim"), "P-TX", cost=cost))
    return sku
