"""What the risk engine is told and what it answers: plain values, no ORM.

The contract between the engine (risk/rules.py, risk/counters.py,
risk/services.py) and the places that ask it (checkout, the payment notify).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum


class Stage(StrEnum):
    CHECKOUT = "checkout"  # before the order is created
    PAID = "paid"  # after payment, before anything is delivered


class Action(StrEnum):
    ALLOW = "allow"
    CAPTCHA = "captcha"
    LOGIN = "login"  # a guest logs in first; an account's checkout is allowed
    REVIEW = "review"
    BLOCK = "block"


class Severity(IntEnum):
    """How strong an action is, to compare them."""

    ALLOW = 0
    CAPTCHA = 1
    LOGIN = 2
    REVIEW = 3
    BLOCK = 4


@dataclass(frozen=True)
class Signals:
    """Everything a rule may look at, for one checkout or one paid order.

    No secrets: a recharge account is an account number, not a password; an
    email is kept whole here but only its domain is recorded.
    """

    stage: Stage
    now: dt.datetime
    ip: str | None = None
    device: str = ""  # the signed device cookie's id ("" when the client has none)
    ua_hash: str = ""  # sha256 hex of the user agent, first 16 chars
    user_id: int | None = None
    account_created_at: dt.datetime | None = None
    email: str = ""
    recharge_account: str = ""
    sku_id: int | None = None
    platform_id: int | None = None
    quantity: int = 1
    amount: Decimal = Decimal("0.00")
    order_id: int | None = None  # stage PAID: the order being assessed
    payment_outcome: str = ""  # stage PAID: e.g. "paid", "reopened"

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2].strip().lower()


@dataclass(frozen=True)
class Fired:
    rule_id: int
    name: str
    kind: str
    action: Action
    detail: str = ""  # e.g. "orders per ip in 3600s: 6 > 5" (for operators only)


@dataclass(frozen=True)
class Assessment:
    action: Action
    fired: tuple[Fired, ...] = ()
    evaluation_id: int | None = None
    # Checkout only: the counters' provisional hold, released when no order
    # is created (risk.services.risk_checkout_abandon) and confirmed with the
    # order's id otherwise (risk.services.risk_checkout_confirm).
    hold: tuple[str, ...] = field(default=())
    # Checkout only, when it goes on to place an order (`risk_assess(defer=True)`):
    # the RiskEvaluation not written yet (evaluation_id None), written with the
    # new order by order_place (in the order's own statement, risk/checkout.py
    # checkout_place), else once by risk_checkout_confirm (with the order's id)
    # or risk_checkout_abandon (without).
    record: object = field(default=None, compare=False, repr=False)

    @property
    def reasons(self) -> str:
        """For operators (the review queue): which rules fired and why."""
        return "; ".join(
            f"{f.name}: {f.detail}" if f.detail else f.name for f in self.fired
        )
