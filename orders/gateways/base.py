"""The gateway interface: start a payment, verify a notify, query, close, refund.

Every gateway speaks the same small language so that services never ask which
one they hold. Transport failures (the gateway could not be reached or answered
with a server error) raise `httpx.HTTPError` and are worth retrying; a refusal
(the gateway answered "no") raises `GatewayError`, a `DomainError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol

import httpx

from config.lib.errors import DomainError

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from orders.models import Order, Payment

# Where the shopper pays: a desktop browser (a page with a QR code) or a phone
# (the gateway's mobile cashier). Decided from the user agent by the view.
ClientKind = Literal["desktop", "phone"]
# (HTTP status, content type, body): what the notify endpoint answers.
Ack = tuple[int, str, str]


class NotifyRejected(DomainError):
    """A notify we must not act on. `code` is a PaymentNotify.Outcome value."""


class GatewayError(DomainError):
    """The gateway answered and refused (unknown trade, refund over the total...)."""

    code = "gateway_refused"


class GatewayUnavailable(httpx.HTTPError):
    """The gateway answered with a system error or a reply we could not trust: retry later."""


@dataclass(frozen=True)
class ParsedNotify:
    """A verified notify, or a query's answer.

    `waiting` only ever comes from `query` (the trade exists and is unpaid):
    `notify_parse` never returns it, a notify that is not final is rejected.
    """

    out_trade_no: str
    trade_no: str
    amount: Decimal
    status: Literal["success", "closed", "waiting"]
    notify_id: str


@dataclass(frozen=True)
class RefundState:
    """What the gateway says about one of our refund numbers."""

    refund_no: str
    status: Literal["succeeded", "processing", "failed"]
    amount: Decimal | None  # None where the gateway does not say


class Gateway(Protocol):
    name: str

    @property
    def label(self) -> StrOrPromise:
        """Shown to the shopper at checkout ("支付宝")."""
        ...

    def payment_start(
        self,
        *,
        order: Order,
        notify_url: str,
        return_url: str,
        client: ClientKind = "desktop",
    ) -> str:
        """Open a payment with the gateway; returns the URL to send the shopper to.

        Raises: GatewayError, httpx.HTTPError.
        """
        ...

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]:
        """Turn the raw notify request into the fields recorded and then parsed."""
        ...

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        """Verify and parse a notify (never `waiting`). Raises NotifyRejected."""
        ...

    def ack(self, *, accepted: bool) -> Ack:
        """The reply the gateway expects: accepted stops its retries."""
        ...

    def query(self, *, out_trade_no: str) -> ParsedNotify | None:
        """The trade for this order as the gateway sees it; None when it has none.

        Raises: GatewayError, httpx.HTTPError.
        """
        ...

    def close(self, *, out_trade_no: str) -> None:
        """Close the open trades of a cancelled order so it can no longer be paid.

        Idempotent: closing a closed or never-opened trade is not an error.
        Raises: GatewayError (e.g. already paid), httpx.HTTPError.
        """
        ...

    def refund(self, *, payment: Payment, amount: Decimal, refund_no: str) -> None:
        """Ask the gateway to refund. Idempotent on refund_no.

        Raises: GatewayError when it refuses, httpx.HTTPError when unreachable.
        """
        ...

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        """What became of a refund we asked for; None when the gateway never saw it.

        Raises: GatewayError, httpx.HTTPError.
        """
        ...


def form_notify_fields(post: Mapping[str, str]) -> dict[str, str]:
    """The notify's form fields, as gateways that POST forms send them."""
    return {key: str(post.get(key, "")) for key in post}


def text_ack(*, accepted: bool) -> Ack:
    """`success` / `fail` as text: what Alipay and the sandbox wait for."""
    if accepted:
        return 200, "text/plain", "success"
    return 400, "text/plain", "fail"
