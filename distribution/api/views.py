"""The partner API's endpoints: thin, each calls one service (SPEC §4.4)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import NinjaAPI, Status

from config.lib.money import format_amount
from distribution.api import errors
from distribution.api.auth import KeyRateThrottle, SignatureAuth
from distribution.api.schemas import (
    BalanceOut,
    ErrorOut,
    OrderIn,
    OrderOut,
    ProductsOut,
)
from distribution.models import ApiKey
from distribution.partners.balance import balance_of
from distribution.partners.orders import (
    OrderRequest,
    partner_order_get,
    partner_order_place,
)
from distribution.partners.products import partner_product_list
from distribution.partners.replies import OrderReply, partner_order_reply

api = NinjaAPI(
    title="Kaquan partner API",
    version="1",
    description=(
        "Orders paid from a prepaid balance, at your tier's prices (SPEC §4.4). "
        "Every request is signed; errors are "
        '{"error": {"code": "...", "message": "..."}}.'
    ),
    urls_namespace="partner-api",
    openapi_url="/openapi.json",
    docs_url=None,
    auth=SignatureAuth(),
    throttle=[KeyRateThrottle()],
)
errors.install(api)

# Every signed endpoint may answer these; documented so clients (and
# schemathesis) know them.
_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 429: ErrorOut}


def _key(request: HttpRequest) -> ApiKey:
    key = request.auth  # type: ignore[attr-defined]
    assert isinstance(key, ApiKey)  # noqa: S101 (SignatureAuth ran)
    return key


def _reply(request: HttpRequest, key: ApiKey, partner_order: Any) -> OrderReply:
    return partner_order_reply(
        partner_order=partner_order,
        user=key.account.reseller.user,
        ip_address=getattr(request, "partner_ip", None),
    )


@api.get(
    "/products",
    response={200: ProductsOut, **_ERRORS},
    summary="Products at your price",
)
def products(request: HttpRequest) -> Status[dict[str, Any]]:
    key = _key(request)
    return Status(
        200, {"products": partner_product_list(reseller=key.account.reseller)}
    )


@api.post(
    "/orders",
    response={200: OrderOut, 201: OrderOut, 402: ErrorOut, 409: ErrorOut, **_ERRORS},
    summary="Place an order paid from the balance (idempotent on out_trade_no)",
)
def order_create(request: HttpRequest, payload: OrderIn) -> Status[OrderReply]:
    key = _key(request)
    placed = partner_order_place(
        key=key,
        request=OrderRequest(
            out_trade_no=payload.out_trade_no,
            sku=payload.sku,
            quantity=payload.quantity,
            recharge_account=payload.recharge_account,
        ),
        ip_address=getattr(request, "partner_ip", None),
    )
    reply = _reply(request, key, placed.partner_order)
    return Status(201 if placed.created else 200, reply)


@api.get(
    "/orders/{out_trade_no}",
    response={200: OrderOut, 404: ErrorOut, **_ERRORS},
    summary="One of your orders",
)
def order_detail(request: HttpRequest, out_trade_no: str) -> Status[OrderReply]:
    key = _key(request)
    partner_order = partner_order_get(
        account_id=key.account_id, out_trade_no=out_trade_no
    )
    return Status(200, _reply(request, key, partner_order))


@api.get(
    "/balance", response={200: BalanceOut, **_ERRORS}, summary="Your prepaid balance"
)
def balance(request: HttpRequest) -> Status[dict[str, str]]:
    key = _key(request)
    return Status(
        200, {"balance": format_amount(balance_of(account_id=key.account_id))}
    )
