"""The simulator's protocol-shaped values: products, orders, money, biz validation.

Pure data and checks, no locks and no threads; `state` keeps these in its books.
The shapes follow supplier-protocol.md ("Methods", "Order object").
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from fulfillment.simulator.faults import PLACE_DIRECT
from fulfillment.suppliers import protocol

DEFAULT_PROCESSING_SECONDS = 0.2
MAX_BUY_NUM = 100
LOW_STOCK = 10  # product.list says "low" at or below this many units
ACCOUNT_PATTERNS = {
    "qq": re.compile(r"^[1-9]\d{4,11}$"),
    "phone": re.compile(r"^1[3-9]\d{9}$"),
}
CENT = Decimal("0.01")


class ApiError(Exception):
    """A protocol rejection: `code` from the error table, `message` for humans."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def money(value: Decimal) -> str:
    """Money on the wire: a string with two decimal places."""
    return str(value.quantize(CENT))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    type: Literal["direct", "card"]
    face_value: Decimal
    price: Decimal
    status: Literal["on", "off"] = "on"
    stock: int | None = None  # None: unlimited
    account_kind: str = ""  # direct products: a key of ACCOUNT_PATTERNS

    def as_wire(self) -> dict[str, Any]:
        if self.stock is None or self.stock > LOW_STOCK:
            stock = "ok"
        else:
            stock = "low" if self.stock > 0 else "out"
        return {
            "product_id": self.product_id,
            "name": self.name,
            "type": self.type,
            "face_value": money(self.face_value),
            "price": money(self.price),
            "status": self.status,
            "stock": stock,
        }


DEFAULT_CATALOG = (
    Product("P-TX-VIP-MONTH", "腾讯视频 VIP 月卡直充", "direct", Decimal("30.00"), Decimal("24.00"), account_kind="qq"),
    Product("P-TX-VIP-QUARTER", "腾讯视频 VIP 季卡直充", "direct", Decimal("88.00"), Decimal("72.00"), account_kind="qq"),
    Product("P-NE-MUSIC-MONTH", "网易云音乐 黑胶VIP 月卡直充", "direct", Decimal("15.00"), Decimal("11.50"), account_kind="phone"),
    Product("P-IQ-VIP-MONTH", "爱奇艺 黄金VIP 月卡直充", "direct", Decimal("30.00"), Decimal("23.00"), account_kind="phone"),
    Product("C-YK-VIP-MONTH", "优酷 VIP 月卡卡密", "card", Decimal("30.00"), Decimal("20.00")),
    Product("C-IQ-VIP-MONTH", "爱奇艺 黄金VIP 月卡卡密", "card", Decimal("30.00"), Decimal("21.00")),
)  # fmt: skip


@dataclass
class Order:
    order_id: str
    app_key: str
    customer_order_no: str
    product_id: str
    kind: Literal["direct", "card"]
    charge_account: str
    buy_num: int
    price: Decimal
    notify_url: str
    biz_key: str  # the normalised biz, to tell a replay from a reuse (3002)
    created_at: str
    due: float  # monotonic time the order settles
    forced_state: str  # "success"/"failed" at settlement
    fail_reason: str
    flags: frozenset[str]  # order faults taken at creation (corrupt_cards, ...)
    processing_at: float
    state: str = protocol.UNTREATED
    finished_at: str = ""
    cards: list[dict[str, str]] = field(default_factory=list)

    def as_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "order_id": self.order_id,
            "customer_order_no": self.customer_order_no,
            "product_id": self.product_id,
            "charge_account": self.charge_account,
            "buy_num": self.buy_num,
            "price": money(self.price),
            "state": self.state,
            "fail_reason": self.fail_reason if self.state == protocol.FAILED else "",
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
        if self.kind == "card" and self.state == protocol.SUCCESS:
            data["cards"] = [dict(card) for card in self.cards]
        return data


def text_field(
    biz: dict[str, Any], name: str, *, max_len: int, required: bool = True
) -> str:
    value = biz.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(protocol.INVALID_PARAMETER, f"{name} is required")
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise ApiError(
            protocol.INVALID_PARAMETER,
            f"{name} must be text of at most {max_len} characters",
        )
    return value


def _buy_num(biz: dict[str, Any]) -> int:
    value = biz.get("buy_num")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_BUY_NUM
    ):
        raise ApiError(
            protocol.INVALID_PARAMETER,
            f"buy_num must be an integer from 1 to {MAX_BUY_NUM}",
        )
    return value


def _max_price(biz: dict[str, Any]) -> Decimal | None:
    value = biz.get("max_price")
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        price = Decimal(-1)
    if isinstance(value, bool) or not price.is_finite() or price <= 0:
        raise ApiError(
            protocol.INVALID_PARAMETER, "max_price must be a positive amount"
        )
    return price


def parse_place_biz(method: str, biz: dict[str, Any]) -> dict[str, Any]:
    """Validate an order.*.add biz (1101 on anything wrong); returns it normalised."""
    notify_url = text_field(biz, "notify_url", max_len=512)
    if not notify_url.startswith(("http://", "https://")):
        raise ApiError(protocol.INVALID_PARAMETER, "notify_url must be an http(s) URL")
    parsed: dict[str, Any] = {
        "kind": "direct" if method == PLACE_DIRECT else "card",
        "product_id": text_field(biz, "product_id", max_len=64),
        "customer_order_no": text_field(
            biz, "customer_order_no", max_len=protocol.CUSTOMER_ORDER_NO_MAX
        ),
        "buy_num": _buy_num(biz),
        "notify_url": notify_url,
        "charge_account": "",
        "max_price": None,
    }
    if method == PLACE_DIRECT:
        parsed["charge_account"] = text_field(biz, "charge_account", max_len=64)
        max_price = _max_price(biz)
        parsed["max_price"] = None if max_price is None else money(max_price)
    return parsed


def card_secret_corrupt() -> str:
    # Valid base64, long enough, but no AES-GCM tag will ever verify.
    return base64.b64encode(os.urandom(40)).decode("ascii")
