"""Commission arithmetic: pure functions on plain values, no ORM.

Rounding (docs/DECISIONS.md, "Commission rounding"): every level's commission is
rounded DOWN to the fen. The shop never pays a fraction of a fen it did not
owe, the levels of one line together never exceed what the shopper paid, and a
refund claws back exactly what the smaller remainder no longer earns:

    commission(base, rate) = floor_to_fen(base × rate), within [0, base]

After a refund the line's commission at a level is recomputed on what is left
of the line at the rate paid; the difference is what is voided or reversed.
So two partial refunds take back the same total as one refund of their sum.
Rates that add up to more than 1 are scaled down first (`commission_split`),
so the levels of a line never together pass what the shopper paid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from config.lib.money import CENT, ZERO

MAX_LEVEL = 3
RATE_STEP = Decimal("0.0001")  # CommissionRule.rate and CommissionEntry.rate: 4 places


@dataclass(frozen=True)
class RuleCandidate:
    """A CommissionRule as plain values (tier_id/sku_id None: any)."""

    level: int
    rate: Decimal
    tier_id: int | None = None
    sku_id: int | None = None


@dataclass(frozen=True)
class LevelShare:
    """What one level earns on one line."""

    level: int
    rate: Decimal
    amount: Decimal


def commission_amount(*, base: Decimal, rate: Decimal) -> Decimal:
    """floor_to_fen(base × rate), never negative and never above `base`."""
    if base <= 0 or rate <= 0:
        return ZERO
    amount = (base * rate).quantize(CENT, rounding=ROUND_DOWN)
    return min(amount, base.quantize(CENT, rounding=ROUND_DOWN))


def commission_split(*, base: Decimal, rates: Sequence[Decimal]) -> list[LevelShare]:
    """Each level's commission on a line that cost the shopper `base`.

    `rates[0]` is level 1. Operators may set rates that add up to more than
    100 %; the shopper's payment is still the ceiling, so such rates are scaled
    down in proportion (each rounded down to RATE_PLACES) until they add up to
    at most 1. The share carries the rate actually applied: refunds claw back
    at that rate, so every level is computed on its own and the levels of a
    line never together pass what is left of it.
    """
    if len(rates) > MAX_LEVEL:
        raise ValueError(f"at most {MAX_LEVEL} levels")
    rates = [max(rate, ZERO) for rate in rates]
    total = sum(rates, ZERO)
    if total > 1:
        rates = [
            (rate / total).quantize(RATE_STEP, rounding=ROUND_DOWN) for rate in rates
        ]
    return [
        LevelShare(
            level=level, rate=rate, amount=commission_amount(base=base, rate=rate)
        )
        for level, rate in enumerate(rates, start=1)
    ]


def commission_clawback(
    *, earned_net: Decimal, rate: Decimal, base_left: Decimal
) -> Decimal:
    """How much of a level's commission a refund takes back (≥ 0).

    `earned_net` is what the level holds on the line now (its earn less earlier
    clawbacks), `base_left` what the shopper has not been refunded. The level
    keeps `commission_amount(base_left, rate)` and gives back the rest; calling
    it again after nothing changed gives back nothing.
    """
    keep = commission_amount(base=base_left, rate=rate)
    return max(earned_net - keep, ZERO)


def rule_pick(
    rules: Iterable[RuleCandidate], *, level: int, tier_id: int | None, sku_id: int
) -> RuleCandidate | None:
    """The rule that applies to a level, a reseller's tier and a SKU; None: no rule.

    Most specific wins: SKU and tier > SKU > tier > global. A rule naming another
    tier or SKU never applies.
    """
    best: RuleCandidate | None = None
    best_rank = -1
    for rule in rules:
        if rule.level != level:
            continue
        if rule.tier_id is not None and rule.tier_id != tier_id:
            continue
        if rule.sku_id is not None and rule.sku_id != sku_id:
            continue
        rank = (2 if rule.sku_id is not None else 0) + (
            1 if rule.tier_id is not None else 0
        )
        if rank > best_rank:
            best, best_rank = rule, rank
    return best
