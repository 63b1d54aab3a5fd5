"""Prove the commission ledger: every reseller's books agree with themselves and the orders.

`commissions_reconcile` lists every discrepancy (empty: the books agree). It is
what `manage.py reconcile_commissions` and the admin report show. Checks:

1. Balances: what the dashboard shows (distribution.selectors.reseller_balances,
   one SQL aggregate) equals the ledger summed row by row here.
2. Payouts: an open request holds available rows adding up to its amount; an
   approved one, paid rows adding up to its amount; a rejected one holds
   nothing; no row is paid without an approved payout. So, per reseller,
   paid = Σ approved payouts.
3. Lines: each earn's level holds (earn + clawbacks, void rows aside) exactly
   the commission the line's unrefunded amount earns at that rate, never less
   than zero: a refund whose clawback was never written shows up here.
4. Clawbacks point at an earn of the same reseller, line and level.
5. Settlement runs: no pending row more than SETTLEMENT_GRACE past its date.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from config.lib.money import ZERO
from distribution.commissions import commission_amount
from distribution.models import CommissionEntry, Payout, Reseller
from distribution.selectors import Balances, reseller_balances

CE = CommissionEntry
PS = Payout.Status
SETTLEMENT_GRACE = dt.timedelta(days=1)


@dataclass(frozen=True)
class Discrepancy:
    reseller: str  # the referral code ("" when no reseller is involved)
    problem: str

    def __str__(self) -> str:
        return f"reseller {self.reseller}: {self.problem}"


def _balances_from_rows(rows: list[CommissionEntry]) -> Balances:
    sums = {"pending": ZERO, "available": ZERO, "requested": ZERO, "paid": ZERO}
    for row in rows:
        if row.state == CE.State.PENDING:
            sums["pending"] += row.amount
        elif row.state == CE.State.AVAILABLE:
            sums["requested" if row.payout_id else "available"] += row.amount
        elif row.state == CE.State.PAID:
            sums["paid"] += row.amount
    return Balances(**sums)


# Resellers whose ledgers are read at once: memory holds one batch's rows, never
# the whole ledger (a reseller's earns and clawbacks are always in one batch).
RESELLER_BATCH = 200
# What the checks read of a row and its line: no other column is loaded.
ENTRY_FIELDS = (
    "id",
    "reseller",
    "kind",
    "state",
    "level",
    "rate",
    "amount",
    "available_at",
    "payout",
    "reverses",
    "order_line",
    "order_line__amount",
    "order_line__refunded_amount",
)


def commissions_reconcile(
    *, now: dt.datetime | None = None, batch: int = RESELLER_BATCH
) -> list[Discrepancy]:
    """Every discrepancy in the commission ledger, per reseller (see the module
    docstring), read `batch` resellers at a time."""
    now = now or timezone.now()
    ids = list(Reseller.objects.order_by("pk").values_list("pk", flat=True))
    found: list[Discrepancy] = []
    for start in range(0, len(ids), batch):
        found += _reconcile_batch(ids[start : start + batch], now=now)
    return found


def _reconcile_batch(reseller_ids: list[int], *, now: dt.datetime) -> list[Discrepancy]:
    codes = dict(
        Reseller.objects.filter(pk__in=reseller_ids).values_list("pk", "referral_code")
    )
    entries = list(
        CommissionEntry.objects.filter(reseller_id__in=reseller_ids)
        .select_related("order_line")
        .only(*ENTRY_FIELDS)
        .order_by("pk")
    )
    by_reseller: dict[int, list[CommissionEntry]] = defaultdict(list)
    for entry in entries:
        by_reseller[entry.reseller_id].append(entry)
    found: list[Discrepancy] = []

    shown = reseller_balances(reseller_ids=codes)
    for reseller_id, code in codes.items():
        ledger = _balances_from_rows(by_reseller.get(reseller_id, []))
        if shown[reseller_id] != ledger:
            found.append(
                Discrepancy(
                    code, f"balances shown {shown[reseller_id]} ≠ ledger {ledger}"
                )
            )

    found += _check_payouts(entries, codes)
    found += _check_lines(entries, codes)
    for entry in entries:
        if (
            entry.state == CE.State.PENDING
            and entry.available_at < now - SETTLEMENT_GRACE
        ):
            found.append(
                Discrepancy(
                    codes[entry.reseller_id],
                    f"entry #{entry.pk} still pending since {entry.available_at:%Y-%m-%d}"
                    " (is the settlement task running?)",
                )
            )
    return found


def _check_payouts(
    entries: list[CommissionEntry], codes: dict[int, str]
) -> list[Discrepancy]:
    found = []
    held: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in entries:
        if entry.payout_id is not None:
            held[entry.payout_id][entry.state] += entry.amount
        elif entry.state == CE.State.PAID:
            found.append(
                Discrepancy(
                    codes[entry.reseller_id], f"entry #{entry.pk} paid by no payout"
                )
            )
    expected_state: dict[str, str] = {
        PS.REQUESTED: CE.State.AVAILABLE,
        PS.APPROVED: CE.State.PAID,
    }
    for payout in Payout.objects.filter(reseller_id__in=codes).order_by("pk"):
        sums = dict(held.get(payout.pk, {}))
        want = expected_state.get(payout.status)
        expected = {want: payout.amount} if want else {}
        if sums != expected:
            found.append(
                Discrepancy(
                    codes[payout.reseller_id],
                    f"payout #{payout.pk} ({payout.status}, ¥{payout.amount}) holds"
                    f" {_fmt(sums)}, expected {_fmt(expected)}",
                )
            )
    return found


def _fmt(sums: dict[str, Decimal]) -> str:
    if not sums:
        return "nothing"
    return ", ".join(f"{state} ¥{amount}" for state, amount in sorted(sums.items()))


def _check_lines(
    entries: list[CommissionEntry], codes: dict[int, str]
) -> list[Discrepancy]:
    found = []
    earns = {e.pk: e for e in entries if e.kind == CE.Kind.EARN}
    held: dict[int, Decimal] = defaultdict(Decimal)
    for entry in entries:
        earn_id = entry.pk if entry.kind == CE.Kind.EARN else entry.reverses_id
        earn = earns.get(earn_id) if earn_id is not None else None
        if earn is None or (earn.reseller_id, earn.order_line_id, earn.level) != (
            entry.reseller_id,
            entry.order_line_id,
            entry.level,
        ):
            found.append(
                Discrepancy(
                    codes[entry.reseller_id],
                    f"entry #{entry.pk} claws back #{entry.reverses_id},"
                    " not an earn of the same reseller, line and level",
                )
            )
            continue
        if entry.state != CE.State.VOID:
            held[earn.pk] += entry.amount
    for earn in earns.values():
        line = earn.order_line
        left = line.amount - line.refunded_amount
        expected = commission_amount(base=left, rate=earn.rate)
        if earn.state == CE.State.VOID:
            expected = ZERO
        if held[earn.pk] != expected or held[earn.pk] < 0:
            found.append(
                Discrepancy(
                    codes[earn.reseller_id],
                    f"line #{line.pk} level {earn.level} holds ¥{held[earn.pk]},"
                    f" expected ¥{expected} on ¥{left} unrefunded at {earn.rate}",
                )
            )
    return found
