"""A partner's prepaid balance: an append-only ledger, the balance its sum.

Spending (distribution/partners/orders.py) and setting the balance to a value
(`balance_adjust_to`, create_partner) lock the PartnerAccount row first, read
the sum and insert under that lock, so no two spends can both see the same
money. Crediting (an operator's top-up, a refund) needs no lock: it can never
overdraw, and refunds are idempotent on their refund number.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from accounts.models import User
from config.lib.db import row_insert_once
from config.lib.money import ZERO, quantize
from distribution.locks import partner_account_lock_for_update
from distribution.models import PartnerAccount, PartnerBalanceEntry, PartnerOrder
from distribution.partners.errors import PartnerApiError
from orders.gateways.base import GatewayError
from orders.models import Payment

Kind = PartnerBalanceEntry.Kind
MAX_AMOUNT = Decimal("999999999.99")  # what the ledger's columns hold per entry

ERR_AMOUNT = "金额必须是大于 0 的数字，最多两位小数"
ERR_NOT_BALANCE = "this payment was not made from a partner balance"


def balance_of(*, account_id: int) -> Decimal:
    """The balance: the sum of the account's ledger (one query)."""
    total = PartnerBalanceEntry.objects.filter(account_id=account_id).aggregate(
        s=Sum("amount")
    )["s"]
    return quantize(total or ZERO)


def _amount(value: Decimal, *, allow_zero: bool = False) -> Decimal:
    if not value.is_finite() or value != quantize(value) or abs(value) > MAX_AMOUNT:
        raise PartnerApiError(ERR_AMOUNT, code="invalid_amount")
    if value < 0 or (value == 0 and not allow_zero):
        raise PartnerApiError(ERR_AMOUNT, code="invalid_amount")
    return quantize(value)


def balance_top_up(
    *, account: PartnerAccount, amount: Decimal, actor: User | None, note: str = ""
) -> PartnerBalanceEntry:
    """An operator adds money to a partner's balance.

    Raises: PartnerApiError for an amount that is not positive with two places.
    """
    entry = PartnerBalanceEntry(
        account=account,
        kind=Kind.TOP_UP,
        amount=_amount(amount),
        actor=actor,
        note=note[:200],
    )
    entry.full_clean()
    entry.save()
    return entry


def balance_adjust_to(
    *, account: PartnerAccount, target: Decimal, actor: User | None, note: str = ""
) -> PartnerBalanceEntry | None:
    """Set the balance to `target` with one adjustment entry (None when already there).

    Raises: PartnerApiError for a negative or malformed target.
    Locks: PartnerAccount.
    Idempotent: a second call with the same target writes nothing.
    """
    target = _amount(target, allow_zero=True)
    with transaction.atomic():
        partner_account_lock_for_update(account_id=account.pk)
        difference = target - balance_of(account_id=account.pk)
        if difference == 0:
            return None
        entry = PartnerBalanceEntry(
            account=account,
            kind=Kind.ADJUSTMENT,
            amount=difference,
            actor=actor,
            note=note[:200],
        )
        entry.save()
    return entry


class PartnerBalanceLedger:
    """What the balance gateway (orders/gateways/balance.py) asks of the ledger."""

    def refund_credit(
        self, *, payment: Payment, amount: Decimal, refund_no: str
    ) -> None:
        """Credit a refund of a balance payment back. Idempotent on refund_no.

        Raises: GatewayError when the payment's order is no partner order.
        """
        account_id = (
            PartnerOrder.objects.filter(order_id=payment.order_id)
            .values_list("account_id", flat=True)
            .first()
        )
        if account_id is None or amount <= 0:
            raise GatewayError(ERR_NOT_BALANCE)
        row_insert_once(
            PartnerBalanceEntry(
                account_id=account_id,
                kind=Kind.REFUND,
                amount=quantize(amount),
                order_id=payment.order_id,
                refund_no=refund_no,
                note=f"refund {refund_no}"[:200],
            ),
            unique=("refund_no",),
        )

    def refund_credited(self, *, refund_no: str) -> Decimal | None:
        return (
            PartnerBalanceEntry.objects.filter(refund_no=refund_no, kind=Kind.REFUND)
            .values_list("amount", flat=True)
            .first()
        )

    def payment_debited(self, *, order_number: str) -> Decimal | None:
        debited = (
            PartnerBalanceEntry.objects.filter(
                order__number=order_number, kind=Kind.DEBIT
            )
            .values_list("amount", flat=True)
            .first()
        )
        return None if debited is None else -debited
