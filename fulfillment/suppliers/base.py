"""What every supplier adapter offers, and how it reports trouble.

Services talk to suppliers only through `SupplierClient`. An adapter turns its
supplier's wire format into these values and every failure into one
`SupplierError` whose `outcome` says what the caller may do next (the
protocol's error table, supplier-protocol.md):

- `rejected`: the supplier refused; no order exists. Fail over or refund.
- `unknown`: timeout, connection error, 5xx, system busy, an unverifiable reply.
  The order may exist: query it with the same number before anything else.
- `retry_later`: rate limited. Nothing changed; try again after `retry_after`.

Every HTTP exchange is handed to the `record` callback (if any) with secrets,
signatures and card secrets already removed, so callers can store a timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

OrderState = Literal["untreated", "processing", "success", "failed"]
Outcome = Literal["rejected", "unknown", "retry_later"]


class SupplierError(Exception):
    """A call whose result is not a supplier order. Never carries secrets."""

    def __init__(
        self,
        message: str,
        *,
        outcome: Outcome,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outcome: Outcome = outcome
        self.code = code  # the supplier's error code, when it gave one
        self.retry_after = retry_after

    @property
    def is_bad_account(self) -> bool:
        """The shopper's recharge account was refused (code 2004): refund and say so."""
        return self.code == 2004


class CallbackRejected(Exception):
    """A callback we must not act on (bad signature, malformed). Recorded, answered non-200."""


@dataclass(frozen=True)
class SupplierCard:
    """One card bought from a supplier. Plaintext lives only in memory, never in repr."""

    number: str = field(repr=False)
    secret: str = field(repr=False)
    expires: str = ""  # as the supplier wrote it (YYYY-MM-DD), may be empty


@dataclass(frozen=True)
class SupplierOrder:
    order_id: str
    customer_order_no: str
    product_id: str
    state: OrderState
    price: Decimal  # what we pay per unit
    buy_num: int
    charge_account: str = ""
    fail_reason: str = ""
    cards: tuple[SupplierCard, ...] = field(default=(), repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.state in ("success", "failed")


@dataclass(frozen=True)
class SupplierProductInfo:
    product_id: str
    name: str
    type: Literal["direct", "card"]
    face_value: Decimal
    price: Decimal
    status: Literal["on", "off"]
    stock: Literal["ok", "low", "out"]


@dataclass(frozen=True)
class CallbackPayload:
    """A verified callback: only the fields we act on."""

    order_id: str
    customer_order_no: str
    state: OrderState
    fail_reason: str


@dataclass(frozen=True)
class Exchange:
    """One request and its reply, redacted, for the top-up timeline and supplier health."""

    method: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    http_status: int | None
    latency_ms: int
    error: str = ""  # transport error or verification failure, no secrets


Recorder = Callable[[Exchange], None]


class SupplierClient(Protocol):
    def place_direct(
        self,
        *,
        product_id: str,
        customer_order_no: str,
        charge_account: str,
        buy_num: int,
        notify_url: str,
        max_price: Decimal | None = None,
    ) -> SupplierOrder:
        """`order.direct.add`. Raises SupplierError."""
        ...

    def place_card(
        self, *, product_id: str, customer_order_no: str, buy_num: int, notify_url: str
    ) -> SupplierOrder:
        """`order.card.add`. Raises SupplierError."""
        ...

    def query(self, *, customer_order_no: str) -> SupplierOrder | None:
        """`order.get`; None when the supplier has no such order (3003). Raises SupplierError."""
        ...

    def balance(self) -> Decimal:
        """`account.balance`. Raises SupplierError."""
        ...

    def products(self) -> list[SupplierProductInfo]:
        """`product.list`. Raises SupplierError."""
        ...

    def callback_parse(self, body: bytes) -> CallbackPayload:
        """Verify and parse a callback body. Raises CallbackRejected."""
        ...
