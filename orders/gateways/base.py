"""The gateway interface: start a payment, verify a notify, query, close, refund.

Every gateway speaks the same small language so that services never ask which
one they hold. Transport failures (the gateway could not be reached or answered
with a server error) raise `httpx.HTTPError` and are worth retrying; a refusal
(the gateway answered "no") raises `GatewayError`, a `DomainError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable
from zoneinfo import ZoneInfo

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
# Alipay and WeChat Pay both keep Beijing time (timestamps, time_expire).
BEIJING = ZoneInfo("Asia/Shanghai")
State = TypeVar("State", bound=str)


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
    """What the gateway says about one of our refund numbers.

    `processing`: the gateway accepted the refund and settles it later (WeChat
    Pay: seconds for change, days for a bank card); its result notify or
    `refund_query` tells how it ended. `detail` is the gateway's own word for
    the state ("ABNORMAL"), for the operator. `closed`: the gateway closed the
    number for good with nothing refunded under it (WeChat Pay's CLOSED): the same
    number can never refund, so a retry asks under a new one. A failure that may
    still move money (WeChat's ABNORMAL, settled on the merchant platform) is
    never `closed`: a new number there could refund twice.
    """

    refund_no: str
    status: Literal["succeeded", "processing", "failed"]
    amount: Decimal | None  # None where the gateway does not say
    detail: str = ""
    closed: bool = False


@dataclass(frozen=True)
class ParsedRefundNotify:
    """A verified refund result notify: one of our refunds ended."""

    out_trade_no: str
    trade_no: str
    refund_no: str
    status: Literal["succeeded", "failed"]
    amount: Decimal  # what was refunded (asked), in yuan
    notify_id: str
    detail: str  # the gateway's own word ("SUCCESS", "ABNORMAL", "CLOSED")


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

    def payment_on_its_way(self, *, out_trade_no: str) -> bool:
        """Whether this gateway already knows the order paid, its notify still to
        come (the order page then says "payment being confirmed" and polls).

        From what the shop holds itself: no network call. A gateway that keeps
        no such record answers False.
        """
        ...

    def close(self, *, out_trade_no: str) -> None:
        """Close the open trades of a cancelled order so it can no longer be paid.

        Idempotent: closing a closed or never-opened trade is not an error.
        Raises: GatewayError (e.g. already paid), httpx.HTTPError.
        """
        ...

    def refund(
        self, *, payment: Payment, amount: Decimal, refund_no: str
    ) -> RefundState | None:
        """Ask the gateway to refund. Idempotent on refund_no.

        Returns None when the money is back now (Alipay, the sandbox, the
        balance), or the `processing` state of a refund the gateway accepted and
        settles later (WeChat Pay): its result comes by notify or refund_query.
        Raises: GatewayError when it refuses (or ended the refund failed),
        httpx.HTTPError when unreachable.
        """
        ...

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        """What became of a refund we asked for; None when the gateway never saw it.

        Raises: GatewayError, httpx.HTTPError.
        """
        ...


@runtime_checkable
class RefundNotifying(Protocol):
    """A gateway that notifies a refund's result (WeChat Pay): /payments/notify/<name>/refund/."""

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]: ...

    def ack(self, *, accepted: bool) -> Ack: ...

    def refund_notify_parse(self, fields: dict[str, str]) -> ParsedRefundNotify:
        """Verify and parse a refund result notify. Raises NotifyRejected."""
        ...


def order_items_text(order: Order) -> str:
    """ "Name x2, Other x1": the order's lines as a trade's subject or description."""
    return ", ".join(
        f"{name} x{qty}"
        for name, qty in order.lines.filter(parent__isnull=True).values_list(
            "sku_name", "quantity"
        )
    )


def fields_require(fields: Mapping[str, str], names: Iterable[str]) -> None:
    """Raises NotifyRejected (invalid) naming each of `names` missing or empty."""
    missing = [name for name in names if not fields.get(name)]
    if missing:
        raise NotifyRejected("missing fields: " + ", ".join(missing), code="invalid")


def gateway_refusal(gateway: str, detail: str, *, code: object) -> GatewayError:
    """The gateway's "no" (`<gateway> refused: <detail>`), keeping its own error code."""
    return GatewayError(
        f"{gateway} refused: {detail}", code=str(code or "gateway_refused")
    )


def state_map(table: Mapping[str, State], word: object, *, unknown: str) -> State:
    """The gateway's word for a state in ours.

    Raises: GatewayUnavailable(`unknown`) for a word the table lacks: an answer
    we cannot act on, asked again later.
    """
    state = table.get(str(word))
    if state is None:
        raise GatewayUnavailable(unknown)
    return state


def form_notify_fields(post: Mapping[str, str]) -> dict[str, str]:
    """The notify's form fields, as gateways that POST forms send them."""
    return {key: str(post.get(key, "")) for key in post}


def text_ack(*, accepted: bool) -> Ack:
    """`success` / `fail` as text: what Alipay and the sandbox wait for."""
    if accepted:
        return 200, "text/plain", "success"
    return 400, "text/plain", "fail"
