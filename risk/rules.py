"""The risk rules as pure functions: plain values in, a Fired (or None) out.

No ORM and no I/O: risk/services.py builds a RuleSpec from each RiskRule, works
out once per checkout which rules apply and what each counts (`plan`), asks
risk/counters.py for those counts, and calls `evaluate` with the same plan.

Boundaries: a threshold N means "more than N is stopped". Counts include the
checkout being assessed, so with a limit of 5 orders the 5th order passes and the
6th fires. Windows slide: an order counts while it is younger than the window.

How the decision is made (`evaluate`):
1. Rules are taken in priority order (lower number first, then id); rules of
   another stage or outside their scope (platform, SKU) are skipped.
2. An allowlist hit (any fired rule whose action is `allow`) beats every
   blocklist and limit, whatever its priority: the decision is allow. An
   allowlist is an operator's explicit word about one subject (a partner's
   IP range, the QA team's devices), stronger than any automatic limit.
3. Otherwise the first fired rule in priority order decides. A `captcha` rule
   the shopper has already satisfied (captcha_passed) is passed over, so the
   next fired rule decides: solving a captcha never opens a block behind it.
4. A `login` rule asks a guest (no account: signals.user_id None) to log in
   first; for a shopper with an account it is satisfied already and passed
   over like a solved captcha. Severity: between captcha and review.
5. At stage PAID the money is taken: `block`, `captcha` and `login` cannot
   apply any more and become `review` (the order waits for an operator).
Every fired rule is reported, in priority order, whichever decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS

from risk.matching import (
    LIST_ALLOW,
    LIST_BLOCK,
    Lists,
    Subject,
    email_domain,
    list_match,
    normalize_recharge_account,
    parents,
    subject_value,
)
from risk.types import Action, Fired, Signals, Stage


class Kind(StrEnum):
    """Mirrors RiskRule.Kind (a test keeps them equal)."""

    VELOCITY_ORDERS = "velocity_orders"
    VELOCITY_AMOUNT = "velocity_amount"
    SKU_LIMIT = "sku_limit"
    ORDER_QUANTITY = "order_quantity"
    NEW_ACCOUNT = "new_account"
    DISTINCT_RECHARGE_ACCOUNTS = "distinct_recharge_accounts"
    UNPAID_ORDERS = "unpaid_orders"
    BLOCKLIST = "blocklist"
    ALLOWLIST = "allowlist"
    DISPOSABLE_EMAIL = "disposable_email"


class Metric(StrEnum):
    ORDERS = "orders"  # orders placed (any status)
    AMOUNT = "amount"  # their total amount, yuan
    QUANTITY = "quantity"  # units of one SKU
    RECHARGE_ACCOUNTS = "recharge_accounts"  # distinct recharge accounts
    UNPAID = "unpaid"  # pending orders not yet expired (no window)


SCOPE_ALL = "all"
SCOPE_PLATFORM = "platform"
SCOPE_SKU = "sku"
STAGE_BOTH = "both"

# The subjects each counting kind may count per (the admin form enforces them).
COUNTED_SUBJECTS: Mapping[str, frozenset[str]] = {
    Kind.VELOCITY_ORDERS: frozenset(
        {Subject.IP, Subject.DEVICE, Subject.ACCOUNT, Subject.RECHARGE_ACCOUNT}
    ),
    Kind.VELOCITY_AMOUNT: frozenset(
        {Subject.IP, Subject.DEVICE, Subject.ACCOUNT, Subject.RECHARGE_ACCOUNT}
    ),
    Kind.DISTINCT_RECHARGE_ACCOUNTS: frozenset({Subject.ACCOUNT, Subject.DEVICE}),
    Kind.UNPAID_ORDERS: frozenset({Subject.ACCOUNT, Subject.DEVICE, Subject.IP}),
}


@dataclass(frozen=True)
class RuleSpec:
    """One active rule's parameters (a RiskRule row, as plain values)."""

    id: int
    name: str
    kind: str
    action: Action
    stage: str = Stage.CHECKOUT
    priority: int = 100
    scope: str = SCOPE_ALL
    platform_id: int | None = None
    sku_id: int | None = None
    subject: str = ""
    window_seconds: int | None = None
    threshold: Decimal | None = None
    # Unix time since which the rule has counted as it does (RiskRule.counting_since:
    # what it counts last changed): counters kept since before it are complete for
    # its window (risk/counters.py).
    since: float = 0.0


@dataclass(frozen=True)
class Query:
    """One count a rule needs: `metric` of the orders of the checkout's `subject`
    value, restricted to a scope, within `window` seconds (None: no window)."""

    metric: Metric
    subject: str
    scope: str = SCOPE_ALL
    scope_id: int | None = None
    window: int | None = None


Counts = Mapping[Query, Decimal]


@dataclass(frozen=True)
class Verdict:
    action: Action
    fired: tuple[Fired, ...]


# --- what each rule needs counted --------------------------------------------


def _scope(rule: RuleSpec) -> tuple[str, int | None]:
    if rule.scope == SCOPE_PLATFORM:
        return SCOPE_PLATFORM, rule.platform_id
    if rule.scope == SCOPE_SKU:
        return SCOPE_SKU, rule.sku_id
    return SCOPE_ALL, None


def applies(rule: RuleSpec, signals: Signals) -> bool:
    """The rule belongs to this stage and the checkout is inside its scope."""
    if rule.stage not in (signals.stage, STAGE_BOTH):
        return False
    if rule.scope == SCOPE_PLATFORM:
        return rule.platform_id is not None and rule.platform_id == signals.platform_id
    if rule.scope == SCOPE_SKU:
        return rule.sku_id is not None and rule.sku_id == signals.sku_id
    return True


def rule_query(rule: RuleSpec, signals: Signals) -> Query | None:
    """The one count `rule` needs for this checkout (None: it needs none, or the
    checkout lacks the subject, e.g. no device cookie or no recharge account)."""
    scope, scope_id = _scope(rule)
    kind = rule.kind
    if kind in (Kind.VELOCITY_ORDERS, Kind.VELOCITY_AMOUNT):
        if not rule.window_seconds or subject_value(rule.subject, signals) is None:
            return None
        metric = Metric.ORDERS if kind == Kind.VELOCITY_ORDERS else Metric.AMOUNT
        return Query(metric, rule.subject, scope, scope_id, rule.window_seconds)
    if kind == Kind.SKU_LIMIT:
        if signals.user_id is None or signals.sku_id is None:
            return None
        # Always the checkout's own SKU: the scope only says which SKUs are limited.
        return Query(
            Metric.QUANTITY,
            Subject.ACCOUNT,
            SCOPE_SKU,
            signals.sku_id,
            rule.window_seconds or None,
        )
    if kind == Kind.NEW_ACCOUNT:
        if not _is_new_account(rule, signals):
            return None
        # The account is younger than the window: all its orders are inside it.
        return Query(
            Metric.AMOUNT, Subject.ACCOUNT, scope, scope_id, rule.window_seconds
        )
    if kind == Kind.DISTINCT_RECHARGE_ACCOUNTS:
        if (
            not rule.window_seconds
            or not normalize_recharge_account(signals.recharge_account)
            or subject_value(rule.subject, signals) is None
        ):
            return None
        return Query(
            Metric.RECHARGE_ACCOUNTS, rule.subject, scope, scope_id, rule.window_seconds
        )
    if kind == Kind.UNPAID_ORDERS:
        if subject_value(rule.subject, signals) is None:
            return None
        return Query(Metric.UNPAID, rule.subject, scope, scope_id, None)
    return None


# --- the rules ----------------------------------------------------------------


def _fmt(value: Decimal | int) -> str:
    value = Decimal(value)
    return str(value.quantize(Decimal(1)) if value == value.to_integral() else value)


def _over(rule: RuleSpec, value: Decimal | None, what: str) -> Fired | None:
    """Fired when `value` (counting this checkout) is above the threshold."""
    if value is None or rule.threshold is None or value <= rule.threshold:
        return None
    return Fired(
        rule.id,
        rule.name,
        rule.kind,
        rule.action,
        f"{what}: {_fmt(value)} > {_fmt(rule.threshold)}",
    )


def _window(rule: RuleSpec) -> str:
    return f"{rule.window_seconds}s" if rule.window_seconds else "lifetime"


def velocity_orders(
    rule: RuleSpec, signals: Signals, count: Decimal | None
) -> Fired | None:
    """More than `threshold` orders per subject within the window."""
    return _over(rule, count, f"orders per {rule.subject} in {_window(rule)}")


def velocity_amount(
    rule: RuleSpec, signals: Signals, amount: Decimal | None
) -> Fired | None:
    """More than `threshold` yuan per subject within the window."""
    return _over(rule, amount, f"yuan per {rule.subject} in {_window(rule)}")


def sku_limit(
    rule: RuleSpec, signals: Signals, quantity: Decimal | None
) -> Fired | None:
    """More than `threshold` units of this SKU per account within the window
    (no window: lifetime, cancelled orders excepted)."""
    return _over(
        rule, quantity, f"units of sku {signals.sku_id} per account in {_window(rule)}"
    )


def order_quantity(rule: RuleSpec, signals: Signals) -> Fired | None:
    """More than `threshold` units in one order."""
    return _over(rule, Decimal(signals.quantity), "units in one order")


def _is_new_account(rule: RuleSpec, signals: Signals) -> bool:
    if (
        signals.user_id is None
        or signals.account_created_at is None
        or not rule.window_seconds
    ):
        return False
    age = (signals.now - signals.account_created_at).total_seconds()
    return age < rule.window_seconds


def new_account(
    rule: RuleSpec, signals: Signals, amount: Decimal | None
) -> Fired | None:
    """An account younger than the window buys more than `threshold` yuan in all
    (its orders so far and this one)."""
    if not _is_new_account(rule, signals):
        return None
    return _over(
        rule, amount, f"yuan by an account younger than {rule.window_seconds}s"
    )


def distinct_recharge_accounts(
    rule: RuleSpec, signals: Signals, distinct: Decimal | None
) -> Fired | None:
    """More than `threshold` distinct recharge accounts (this one included) per
    account or device within the window."""
    return _over(
        rule, distinct, f"recharge accounts per {rule.subject} in {_window(rule)}"
    )


def unpaid_orders(
    rule: RuleSpec, signals: Signals, held: Decimal | None
) -> Fired | None:
    """More than `threshold` unpaid orders held (this one included) per subject."""
    return _over(rule, held, f"unpaid orders per {rule.subject}")


def _listed(
    rule: RuleSpec, signals: Signals, lists: Lists, list_kind: str
) -> Fired | None:
    entry = list_match(lists, list_kind, rule.subject, signals)
    if not entry:
        return None
    return Fired(
        rule.id, rule.name, rule.kind, rule.action, f"{rule.subject} listed: {entry}"
    )


def blocklist(rule: RuleSpec, signals: Signals, lists: Lists) -> Fired | None:
    """The checkout's subject (IP within a CIDR, email domain or a parent of
    it, device, account, recharge account) is on the block list."""
    return _listed(rule, signals, lists, LIST_BLOCK)


def allowlist(rule: RuleSpec, signals: Signals, lists: Lists) -> Fired | None:
    """The checkout's subject is on the allow list."""
    return _listed(rule, signals, lists, LIST_ALLOW)


def disposable_email(rule: RuleSpec, signals: Signals) -> Fired | None:
    """The email's domain (or a parent of it) is a known disposable-mail domain."""
    domain = email_domain(signals.email)
    hit = (
        next((d for d in parents(domain) if d in DISPOSABLE_DOMAINS), "")
        if domain
        else ""
    )
    if not hit:
        return None
    return Fired(
        rule.id, rule.name, rule.kind, rule.action, f"disposable domain: {hit}"
    )


# Each check gets the count its rule's query found (None: the rule needs none,
# or the checkout lacks its subject).
_Check = Callable[[RuleSpec, Signals, "Decimal | None", Lists], "Fired | None"]

CHECKS: Mapping[str, _Check] = {
    Kind.VELOCITY_ORDERS: lambda r, s, n, _l: velocity_orders(r, s, n),
    Kind.VELOCITY_AMOUNT: lambda r, s, n, _l: velocity_amount(r, s, n),
    Kind.SKU_LIMIT: lambda r, s, n, _l: sku_limit(r, s, n),
    Kind.ORDER_QUANTITY: lambda r, s, _n, _l: order_quantity(r, s),
    Kind.NEW_ACCOUNT: lambda r, s, n, _l: new_account(r, s, n),
    Kind.DISTINCT_RECHARGE_ACCOUNTS: lambda r, s, n, _l: distinct_recharge_accounts(
        r, s, n
    ),
    Kind.UNPAID_ORDERS: lambda r, s, n, _l: unpaid_orders(r, s, n),
    Kind.BLOCKLIST: lambda r, s, _n, lists: blocklist(r, s, lists),
    Kind.ALLOWLIST: lambda r, s, _n, lists: allowlist(r, s, lists),
    Kind.DISPOSABLE_EMAIL: lambda r, s, _n, _l: disposable_email(r, s),
}


# The kinds `rule_query` may give a count for (the others need none).
COUNTING_KINDS = frozenset(
    {
        Kind.VELOCITY_ORDERS,
        Kind.VELOCITY_AMOUNT,
        Kind.SKU_LIMIT,
        Kind.NEW_ACCOUNT,
        Kind.DISTINCT_RECHARGE_ACCOUNTS,
        Kind.UNPAID_ORDERS,
    }
)


@dataclass(frozen=True)
class Plan:
    """One checkout's rules, worked out once (`plan`): the applicable rules in
    priority order, each with the count it needs, and those counts."""

    checks: tuple[tuple[RuleSpec, Query | None], ...]
    queries: dict[Query, float]


def plan(rules: Iterable[RuleSpec], signals: Signals) -> Plan:
    """What `queries_for` and `evaluate` both need: each rule's query is worked
    out once per checkout (they used to ask `rule_query` ~33 times for 20 rules)."""
    checks: list[tuple[RuleSpec, Query | None]] = []
    needed: dict[Query, float] = {}
    for rule in sorted(rules, key=_priority):
        if rule.kind not in CHECKS or not applies(rule, signals):
            continue
        query = rule_query(rule, signals) if rule.kind in COUNTING_KINDS else None
        checks.append((rule, query))
        if query is not None:
            needed[query] = max(needed.get(query, 0.0), rule.since)
    return Plan(checks=tuple(checks), queries=needed)


def _priority(rule: RuleSpec) -> tuple[int, int]:
    return rule.priority, rule.id


def queries_for(rules: Iterable[RuleSpec], signals: Signals) -> dict[Query, float]:
    """Every count the applicable rules need, each with the time from which
    counters must be complete to answer it (the latest `since` of its rules)."""
    return plan(rules, signals).queries


def evaluate(
    rules: Sequence[RuleSpec],
    signals: Signals,
    counts: Counts,
    lists: Lists,
    *,
    captcha_passed: bool = False,
    planned: Plan | None = None,
) -> Verdict:
    """The decision for one checkout or paid order (see the module docstring).

    `planned`: `plan(rules, signals)` when the caller has it already.
    """
    if planned is None:
        planned = plan(rules, signals)
    fired: list[Fired] = []
    for rule, query in planned.checks:
        count = counts.get(query) if query is not None else None
        hit = CHECKS[rule.kind](rule, signals, count, lists)
        if hit is not None:
            fired.append(hit)
    if any(f.action == Action.ALLOW for f in fired):
        return Verdict(Action.ALLOW, tuple(fired))
    decision = Action.ALLOW
    for hit in fired:
        if hit.action == Action.CAPTCHA and captcha_passed:
            continue
        if hit.action == Action.LOGIN and signals.user_id is not None:
            continue  # logged in already
        decision = hit.action
        break
    if signals.stage == Stage.PAID and decision in (
        Action.BLOCK,
        Action.CAPTCHA,
        Action.LOGIN,
    ):
        decision = Action.REVIEW
    return Verdict(decision, tuple(fired))
