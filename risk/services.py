"""The risk engine's use cases: assess a checkout, confirm or abandon it, assess a paid order.

The decision itself is pure (risk/rules.py, whose docstring says how rules are
combined); the counts come from risk/counters.py; the active rules from a
per-process snapshot (risk/cache.py). Every assessment writes one
RiskEvaluation: stage, decision, the rules that fired, and inputs without
secrets (the email's domain only, the recharge account masked but for its last
four characters).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from config.lib.db import row_insert, rows_update
from config.lib.db_row import model_new
from orders.models import Order
from risk import counters
from risk.cache import risk_snapshot
from risk.matching import email_domain, normalize_ip
from risk.models import RiskEvaluation
from risk.rules import Counts, evaluate, plan
from risk.types import Action, Assessment, Fired, Signals, Stage

logger = logging.getLogger(__name__)

PAID_OUTCOME_KEY = "payment_outcome"


def _mask(account: str) -> str:
    """ "13812345678" -> "****5678"; short accounts are masked whole."""
    account = account.strip()
    if not account:
        return ""
    return "****" + account[-4:] if len(account) > 4 else "****"


def _inputs(
    signals: Signals, counts: Counts, source: str, *, captcha_passed: bool
) -> dict[str, Any]:
    age = None
    if signals.account_created_at is not None:
        age = int((signals.now - signals.account_created_at).total_seconds())
    inputs: dict[str, Any] = {
        "ip": normalize_ip(signals.ip) or "",
        "device": signals.device[:64],
        "ua_hash": signals.ua_hash[:16],
        "user_id": signals.user_id,
        "account_age_seconds": age,
        "email_domain": email_domain(signals.email),
        "recharge_account": _mask(signals.recharge_account),
        "sku_id": signals.sku_id,
        "platform_id": signals.platform_id,
        "quantity": signals.quantity,
        "amount": str(signals.amount),
        "captcha_passed": captcha_passed,
    }
    if signals.stage == Stage.PAID:
        inputs[PAID_OUTCOME_KEY] = signals.payment_outcome
    if counts:
        inputs["counters"] = source
        # What the rules saw: lets an operator tune a threshold from the record.
        inputs["counts"] = [
            {
                "metric": str(q.metric),
                "subject": q.subject,
                "scope": q.scope if q.scope_id is None else f"{q.scope}:{q.scope_id}",
                "window": q.window,
                "value": str(v),
            }
            for q, v in counts.items()
        ]
    return inputs


def _fired_json(fired: tuple[Fired, ...]) -> list[dict[str, Any]]:
    return [
        {
            "rule_id": f.rule_id,
            "name": f.name,
            "kind": f.kind,
            "action": str(f.action),
            "detail": f.detail,
        }
        for f in fired
    ]


def _assess(
    signals: Signals,
    *,
    captcha_passed: bool | Callable[[], bool],
    order_id: int | None,
    defer: bool = False,
) -> tuple[Assessment, RiskEvaluation]:
    snapshot = risk_snapshot()
    rules = snapshot.by_stage[signals.stage]
    if callable(captcha_passed):
        # Asked only when an active rule could ask for a captcha (a cache read).
        captcha_passed = any(r.action == Action.CAPTCHA for r in rules) and bool(
            captcha_passed()
        )
    planned = plan(rules, signals)  # each rule's count worked out once
    queries = planned.queries
    result = (
        counters.counters_read(signals, queries)
        if queries
        else counters.CounterResult(counts={})
    )
    verdict = evaluate(
        rules,
        signals,
        result.counts,
        snapshot.lists,
        captcha_passed=captcha_passed,
        planned=planned,
    )
    hold = result.hold
    if hold and verdict.action in (Action.BLOCK, Action.CAPTCHA, Action.LOGIN):
        # No order follows a block, nor a captcha until it is solved (and the
        # solved attempt is assessed, and counted, afresh).
        counters.counters_release(hold)
        hold = ()
    # No full_clean(): every value is built here, none is typed by anyone, and
    # its foreign-key checks would cost two queries on every checkout. Plain SQL
    # (config/lib/db.py): the ORM's create() cost ~470 Python calls per checkout.
    # Built from its values (`RiskEvaluation(**them)` without its per-field
    # look-ups, config/lib/db_row.py): on every checkout.
    evaluation = model_new(
        RiskEvaluation,
        {
            "stage": str(signals.stage),
            "decision": str(verdict.action),
            "fired": _fired_json(verdict.fired),
            "inputs": _inputs(
                signals, result.counts, result.source, captcha_passed=captcha_passed
            ),
            "order_id": order_id,
            "user_id": signals.user_id,
            "ip_address": normalize_ip(signals.ip),
            "device": signals.device[:64],
        },
    )
    if defer and verdict.action not in (Action.BLOCK, Action.CAPTCHA, Action.LOGIN):
        # An order may follow: written once, with its id (risk_checkout_confirm).
        return Assessment(
            action=verdict.action, fired=verdict.fired, hold=hold, record=evaluation
        ), evaluation
    row_insert(evaluation)
    assessment = Assessment(
        action=verdict.action,
        fired=verdict.fired,
        evaluation_id=evaluation.pk,
        hold=hold,
    )
    return assessment, evaluation


def risk_assess(
    signals: Signals,
    *,
    captcha_passed: bool | Callable[[], bool] = False,
    defer: bool = False,
) -> Assessment:
    """Decide on one checkout (or any Signals) and record the evaluation.

    1. The active rules of the stage, from the process's snapshot.
    2. The counts they need (risk/counters.py): at checkout with Redis, this
       checkout is added provisionally (Assessment.hold) in the same atomic step.
    3. The decision (risk.rules.evaluate); a solved captcha (captcha_passed)
       passes over captcha rules, and is recorded. `captcha_passed` may be a
       function (the device's pass, a cache read): called only when an active
       rule of the stage asks for a captcha; otherwise False is recorded.
    4. A block or captcha releases the hold at once; otherwise the caller must
       call risk_checkout_confirm (an order was created) or
       risk_checkout_abandon (none was).
    5. The evaluation is written now; with `defer`, a decision an order may
       follow (not block, captcha or login) is written with the order's id (by
       the order's own statement, orders' order_place, or risk_checkout_confirm:
       one INSERT, no UPDATE linking it), or by risk_checkout_abandon without
       one: every checkout is still recorded.
    Raises: database errors only (a Redis failure degrades to the database).
    Locks: none (the Redis counters are one atomic script).
    Idempotent: no: each call records an evaluation and counts an attempt.
    """
    assessment, _evaluation = _assess(
        signals, captcha_passed=captcha_passed, order_id=signals.order_id, defer=defer
    )
    return assessment


def risk_checkout_confirm(assessment: Assessment, *, order_id: int) -> None:
    """Link the checkout's evaluation to the order it created; its counter
    entries stay (they count that order until they leave their windows). A
    deferred evaluation order_place wrote with the order (its pk set) is done.

    Locks: none.
    Idempotent: yes (an evaluation already linked is left alone).
    """
    if isinstance(assessment.record, RiskEvaluation):
        if assessment.record.pk is None:  # deferred: written now, linked
            assessment.record.order_id = order_id
            row_insert(assessment.record)
        return
    if assessment.evaluation_id is None:
        return
    rows_update(
        RiskEvaluation,
        {"pk": assessment.evaluation_id, "order": None},
        order_id=order_id,
    )


def risk_checkout_abandon(assessment: Assessment) -> None:
    """No order was created for this assessment: remove its provisional counter
    entries (an out-of-stock or invalid checkout must not count against the shopper).

    A deferred evaluation (`risk_assess(defer=True)`) is written, with no order.
    Raises: nothing (an entry Redis keeps by mistake expires with its window; a
        deferred evaluation the database refuses is logged).
    Idempotent: yes.
    """
    counters.counters_release(assessment.hold)
    if isinstance(assessment.record, RiskEvaluation) and assessment.record.pk is None:
        try:
            row_insert(assessment.record)
        except Exception:  # the caller is raising already, or answering the shopper
            logger.exception("risk evaluation of an abandoned checkout not recorded")


def _paid_signals(order: Order, *, payment_outcome: str, now: dt.datetime) -> Signals:
    line = (
        order.lines.filter(parent__isnull=True)
        .select_related("sku__product")
        .order_by("id")
        .first()
    )
    user = order.user  # None for a guest order
    return Signals(
        stage=Stage.PAID,
        now=now,
        ip=order.ip_address,
        device=order.device_id,
        user_id=user.pk if user is not None else None,
        account_created_at=user.date_joined if user is not None else None,
        email=order.email or (user.email if user is not None else ""),
        recharge_account=line.recharge_account if line else "",
        sku_id=line.sku_id if line else None,
        platform_id=line.sku.product.platform_id if line else None,
        quantity=line.quantity if line else 1,
        amount=order.total_amount,
        order_id=order.pk,
        payment_outcome=payment_outcome,
    )


def _from_record(evaluation: RiskEvaluation) -> Assessment:
    fired = tuple(
        Fired(
            rule_id=f["rule_id"],
            name=f["name"],
            kind=f["kind"],
            action=Action(f["action"]),
            detail=f.get("detail", ""),
        )
        for f in evaluation.fired
    )
    return Assessment(
        action=Action(evaluation.decision), fired=fired, evaluation_id=evaluation.pk
    )


def risk_assess_paid(*, order_id: int, payment_outcome: str = "paid") -> Assessment:
    """Decide on a paid order before anything is delivered, with the rules whose
    stage is paid or both; `block` and `captcha` become `review` (the money is
    taken: the order waits for an operator instead).

    The signals come from the order (its account and the account's age, email,
    IP, device, top line's SKU, platform, quantity and recharge account, total);
    the counts from the database, the order itself included once.
    Raises: Order.DoesNotExist for an unknown order_id.
    Locks: none.
    Idempotent: yes: a second call for the same order and payment outcome (a
    repeated notify) returns the recorded decision and records nothing.
    """
    recorded = (
        RiskEvaluation.objects.filter(
            order_id=order_id,
            stage=Stage.PAID,
            **{f"inputs__{PAID_OUTCOME_KEY}": payment_outcome},
        )
        .order_by("-id")
        .first()
    )
    if recorded is not None:
        return _from_record(recorded)
    order = Order.objects.select_related("user").get(pk=order_id)
    signals = _paid_signals(order, payment_outcome=payment_outcome, now=timezone.now())
    assessment, _evaluation = _assess(signals, captcha_passed=False, order_id=order.pk)
    return assessment
