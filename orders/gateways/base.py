"""The gateway interface: start a payment, verify a notify, refund."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol

from config.lib.errors import DomainError

if TYPE_CHECKING:
    from orders.models import Order, Payment


class NotifyRejected(DomainError):
    """A notify we must not act on. `code` is a PaymentNotify.Outcome value."""


@dataclass(frozen=True)
class ParsedNotify:
    out_trade_no: str
    trade_no: str
    amount: Decimal
    status: Literal["success", "closed"]
    notify_id: str


class Gateway(Protocol):
    name: str
    # The body the gateway expects once a notify is recorded.
    ack_body: str

    def payment_start(self, *, order: Order, notify_url: str, return_url: str) -> str:
        """Open a payment with the gateway; returns the URL to send the shopper to."""
        ...

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        """Verify and parse a notify. Raises NotifyRejected."""
        ...

    def close(self, *, out_trade_no: str) -> None:
        """Close the open trades of a cancelled order so it can no longer be paid."""
        ...

    def refund(self, *, payment: Payment, amount: Decimal, refund_no: str) -> None:
        """Ask the gateway to refund. Raises DomainError when it refuses."""
        ...
