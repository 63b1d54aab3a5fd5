"""The prepaid-balance gateway: how partner API orders are paid (SPEC §4.4).

Internal only: never offered at checkout, unknown to the notify endpoint, never
the default. `gateway_for_payment` finds it so that refunds of a balance
payment go through the usual refund pipeline, and its `refund` credits the
partner's balance back.

The balance itself is distribution's (orders knows nothing of resellers): the
distribution app connects its ledger here when it starts (`ledger_connect`, in
distribution/apps.py). Debiting happens in distribution's order service, under
the partner's lock, before the Payment this gateway names is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from django.utils.translation import gettext_lazy as _

from orders.gateways.base import (
    Ack,
    ClientKind,
    GatewayError,
    NotifyRejected,
    ParsedNotify,
    RefundState,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from orders.models import Order, Payment

NAME = "balance"


class BalanceLedger(Protocol):
    def refund_credit(
        self, *, payment: Payment, amount: Decimal, refund_no: str
    ) -> None:
        """Credit `amount` back to the balance that paid `payment`. Idempotent on refund_no.

        Raises: GatewayError when the payment was not paid from a balance.
        """
        ...

    def refund_credited(self, *, refund_no: str) -> Decimal | None:
        """The amount credited for this refund number; None when nothing was."""
        ...

    def payment_debited(self, *, order_number: str) -> Decimal | None:
        """What the balance paid for this order; None when it paid nothing."""
        ...


_ledger: BalanceLedger | None = None


def ledger_connect(ledger: BalanceLedger) -> None:
    """Called once by distribution/apps.py `ready()`."""
    global _ledger  # one registration per process, at start-up
    _ledger = ledger


def _connected() -> BalanceLedger:
    if _ledger is None:
        raise GatewayError("the balance ledger is not connected")
    return _ledger


class BalanceGateway:
    name = NAME

    @property
    def label(self) -> StrOrPromise:
        return _("预存款")

    def payment_start(
        self,
        *,
        order: Order,
        notify_url: str,
        return_url: str,
        client: ClientKind = "desktop",
    ) -> str:
        raise GatewayError("balance payments are made through the partner API only")

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]:
        return {}

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        raise NotifyRejected("the balance gateway sends no notifies", code="invalid")

    def ack(self, *, accepted: bool) -> Ack:
        return 404, "text/plain", ""

    def query(self, *, out_trade_no: str) -> ParsedNotify | None:
        amount = _connected().payment_debited(order_number=out_trade_no)
        if amount is None:
            return None
        return ParsedNotify(
            out_trade_no=out_trade_no,
            trade_no=out_trade_no,
            amount=amount,
            status="success",
            notify_id="",
        )

    def payment_on_its_way(self, *, out_trade_no: str) -> bool:
        """A balance payment is taken at once: never on its way."""
        return False

    def close(self, *, out_trade_no: str) -> None:
        return None  # nothing is ever open: a balance payment is made at once

    def refund(self, *, payment: Payment, amount: Decimal, refund_no: str) -> None:
        _connected().refund_credit(payment=payment, amount=amount, refund_no=refund_no)

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        credited = _connected().refund_credited(refund_no=refund_no)
        if credited is None:
            return None
        return RefundState(refund_no=refund_no, status="succeeded", amount=credited)
