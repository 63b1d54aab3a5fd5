"""The partner API's request and response schemas (SPEC §4.4): what openapi.json says."""

from __future__ import annotations

from typing import Annotated

from ninja import Field, Schema
from pydantic import StrictInt, StrictStr

# No control characters (NUL included): PostgreSQL text cannot hold NUL, and
# none belongs in an identifier or an account.
OUT_TRADE_NO_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,39}$"
ACCOUNT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MONEY_PATTERN = r"^-?\d+\.\d{2}$"

Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["30.00"])]


class ErrorBody(Schema):
    code: str = Field(
        description="A stable machine-readable code, e.g. insufficient_balance"
    )
    message: str = Field(description="What went wrong, for a person")


class ErrorOut(Schema):
    error: ErrorBody


class OrderIn(Schema):
    out_trade_no: Annotated[StrictStr, Field(pattern=OUT_TRADE_NO_PATTERN)] = Field(
        description="Your order number: the same one again returns the same order"
    )
    sku: Annotated[StrictStr, Field(pattern=SKU_PATTERN)] = Field(
        description="A SKU code from GET /api/v1/products"
    )
    quantity: Annotated[StrictInt, Field(ge=1, le=1000)]
    recharge_account: Annotated[
        StrictStr, Field(max_length=64, pattern=ACCOUNT_PATTERN)
    ] = Field(
        default="",
        description="The account to credit, for SKUs whose account_rule is set",
    )


class TopUpOut(Schema):
    status: str = Field(description="pending, submitted, succeeded or failed")
    supplier_order_no: str


class OrderOut(Schema):
    out_trade_no: str
    number: str = Field(description="Kaquan's order number")
    status: str = Field(
        description="pending, paid, review, fulfilling, delivered, refunded, "
        "partially_refunded or cancelled (SPEC §3)"
    )
    sku: str
    quantity: int
    amount: Money
    codes: list[str] = Field(description="Card codes, once delivered")
    topups: list[TopUpOut]


class ProductOut(Schema):
    sku: str
    name: str
    platform: str
    delivery: str = Field(description="card_code, direct_topup or bundle")
    price: Money = Field(description="Your price (your tier's)")
    face_value: Money
    in_stock: bool
    account_rule: str | None = Field(
        description="phone, qq, email or any when a recharge_account is needed"
    )


class ProductsOut(Schema):
    products: list[ProductOut]


class BalanceOut(Schema):
    balance: Money
