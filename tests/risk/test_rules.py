"""The pure rules: boundaries, lists, normalisation and how a decision is made."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from risk.matching import Lists, email_domain, lists_build
from risk.models import RiskRule, Subject
from risk.rules import Kind, Metric, Query, RuleSpec, evaluate, queries_for
from risk.types import Action, Signals, Stage

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
NO_LISTS = Lists()


def signals(**kwargs) -> Signals:
    base = {
        "stage": Stage.CHECKOUT,
        "now": NOW,
        "ip": "198.51.100.7",
        "device": "dev-1",
        "user_id": 7,
        "account_created_at": NOW - dt.timedelta(days=400),
        "email": "shopper@example.com",
        "recharge_account": "13812345678",
        "sku_id": 3,
        "platform_id": 2,
        "quantity": 1,
        "amount": Decimal("25.00"),
    }
    base.update(kwargs)
    return Signals(**base)


def rule(id=1, **kwargs) -> RuleSpec:
    base = {
        "id": id,
        "name": f"r{id}",
        "kind": Kind.VELOCITY_ORDERS,
        "action": Action.BLOCK,
        "subject": Subject.DEVICE,
        "window_seconds": 3600,
        "threshold": Decimal(5),
    }
    base.update(kwargs)
    return RuleSpec(**base)


def decide(rules, s=None, counts=None, lists=NO_LISTS, **kwargs):
    return evaluate(rules, s or signals(), counts or {}, lists, **kwargs)


def counted(r: RuleSpec, s: Signals, value) -> dict[Query, Decimal]:
    (query,) = queries_for([r], s)
    return {query: Decimal(value)}


def test_rule_kinds_are_the_models_kinds():
    assert {str(k) for k in Kind} == set(RiskRule.Kind.values)
    assert {str(s) for s in Subject} >= {"ip", "device", "account"}


@pytest.mark.parametrize(
    ("kind", "threshold", "at_limit", "over"),
    [
        (Kind.VELOCITY_ORDERS, 5, 5, 6),
        (Kind.VELOCITY_AMOUNT, 100, "100.00", "100.01"),
        (Kind.SKU_LIMIT, 3, 3, 4),
        (Kind.DISTINCT_RECHARGE_ACCOUNTS, 3, 3, 4),
        (Kind.UNPAID_ORDERS, 2, 2, 3),
        (Kind.NEW_ACCOUNT, 100, "100", "125"),
    ],
)
def test_counting_rule_passes_at_its_threshold_and_fires_above(
    kind, threshold, at_limit, over
):
    subject = {
        Kind.DISTINCT_RECHARGE_ACCOUNTS: Subject.ACCOUNT,
        Kind.SKU_LIMIT: Subject.ACCOUNT,
    }.get(kind, Subject.DEVICE)
    r = rule(
        kind=kind, subject=subject, threshold=Decimal(threshold), window_seconds=86400
    )
    s = signals(account_created_at=NOW - dt.timedelta(hours=1))

    assert decide([r], s, counted(r, s, at_limit)).action == Action.ALLOW
    verdict = decide([r], s, counted(r, s, over))

    assert verdict.action == Action.BLOCK
    assert verdict.fired[0].rule_id == r.id
    assert "> " in verdict.fired[0].detail


def test_order_quantity_passes_at_its_threshold_and_fires_above():
    r = rule(kind=Kind.ORDER_QUANTITY, subject="", threshold=Decimal(10))

    assert decide([r], signals(quantity=10)).action == Action.ALLOW
    assert decide([r], signals(quantity=11)).action == Action.BLOCK


def test_new_account_rule_spares_accounts_older_than_its_window():
    r = rule(
        kind=Kind.NEW_ACCOUNT, subject="", window_seconds=86400, threshold=Decimal(50)
    )
    young = signals(account_created_at=NOW - dt.timedelta(seconds=86399))
    old = signals(account_created_at=NOW - dt.timedelta(seconds=86400))

    assert queries_for([r], young) == {
        Query(Metric.AMOUNT, Subject.ACCOUNT, "all", None, 86400): 0.0
    }
    assert queries_for([r], old) == {}
    assert decide([r], old, {}).action == Action.ALLOW


def test_rules_without_their_subject_need_no_count_and_never_fire():
    device_rule = rule(subject=Subject.DEVICE)
    recharge_rule = rule(
        id=2, kind=Kind.DISTINCT_RECHARGE_ACCOUNTS, subject=Subject.ACCOUNT
    )
    s = signals(device="", recharge_account="")

    assert queries_for([device_rule, recharge_rule], s) == {}
    assert decide([device_rule, recharge_rule], s).action == Action.ALLOW


def test_scoped_rule_applies_only_to_its_platform_or_sku():
    on_platform = rule(
        scope="platform", platform_id=2, kind=Kind.ORDER_QUANTITY, threshold=Decimal(1)
    )
    on_sku = rule(
        id=2, scope="sku", sku_id=99, kind=Kind.ORDER_QUANTITY, threshold=Decimal(1)
    )
    s = signals(quantity=2)

    verdict = decide([on_platform, on_sku], s)

    assert [f.rule_id for f in verdict.fired] == [1]
    assert (
        decide([on_platform], signals(quantity=2, platform_id=5)).action == Action.ALLOW
    )


def test_first_fired_rule_by_priority_decides():
    captcha = rule(
        id=1,
        kind=Kind.ORDER_QUANTITY,
        threshold=Decimal(1),
        action=Action.CAPTCHA,
        priority=10,
    )
    block = rule(
        id=2,
        kind=Kind.ORDER_QUANTITY,
        threshold=Decimal(1),
        action=Action.BLOCK,
        priority=20,
    )
    s = signals(quantity=2)

    verdict = decide([block, captcha], s)

    assert verdict.action == Action.CAPTCHA
    assert [f.rule_id for f in verdict.fired] == [1, 2]
    assert decide([replace(block, priority=5), captcha], s).action == Action.BLOCK


def test_solved_captcha_passes_over_captcha_rules_but_not_the_block_behind_them():
    captcha = rule(
        id=1,
        kind=Kind.ORDER_QUANTITY,
        threshold=Decimal(1),
        action=Action.CAPTCHA,
        priority=10,
    )
    block = rule(
        id=2,
        kind=Kind.ORDER_QUANTITY,
        threshold=Decimal(3),
        action=Action.BLOCK,
        priority=20,
    )

    assert (
        decide([captcha, block], signals(quantity=2), captcha_passed=True).action
        == Action.ALLOW
    )
    assert (
        decide([captcha, block], signals(quantity=4), captcha_passed=True).action
        == Action.BLOCK
    )


def test_allowlist_beats_a_blocklist_of_higher_priority():
    lists = lists_build(
        [("block", "ip", "198.51.100.0/24"), ("allow", "device", "dev-1")]
    )
    block = rule(id=1, kind=Kind.BLOCKLIST, subject=Subject.IP, priority=1)
    allow = rule(
        id=2,
        kind=Kind.ALLOWLIST,
        subject=Subject.DEVICE,
        action=Action.ALLOW,
        priority=500,
    )

    verdict = decide([block, allow], lists=lists)

    assert verdict.action == Action.ALLOW
    assert [f.rule_id for f in verdict.fired] == [1, 2]


@pytest.mark.parametrize(
    ("configured", "paid"),
    [
        (Action.BLOCK, Action.REVIEW),
        (Action.CAPTCHA, Action.REVIEW),
        (Action.REVIEW, Action.REVIEW),
    ],
)
def test_paid_stage_turns_block_and_captcha_into_review(configured, paid):
    r = rule(
        kind=Kind.ORDER_QUANTITY, threshold=Decimal(1), action=configured, stage="paid"
    )

    verdict = decide([r], signals(stage=Stage.PAID, quantity=2))

    assert verdict.action == paid
    assert verdict.fired[0].action == configured


def test_rule_of_another_stage_is_not_evaluated():
    r = rule(kind=Kind.ORDER_QUANTITY, threshold=Decimal(1), stage="paid")
    both = rule(id=2, kind=Kind.ORDER_QUANTITY, threshold=Decimal(1), stage="both")

    assert [f.rule_id for f in decide([r, both], signals(quantity=2)).fired] == [2]


@pytest.mark.parametrize(
    ("ip", "listed"),
    [
        ("198.51.100.7", True),
        ("198.51.100.255", True),
        ("198.51.101.1", False),
        ("::ffff:198.51.100.9", True),  # IPv4-mapped IPv6 is the IPv4 address
        ("2001:db8::1:5", True),
        ("2001:db9::1", False),
        ("203.0.113.9", True),
        ("not-an-ip", False),
        (None, False),
    ],
)
def test_ip_blocklist_matches_addresses_and_cidrs(ip, listed):
    lists = lists_build(
        [
            ("block", "ip", "198.51.100.0/24"),
            ("block", "ip", "2001:db8::/48"),
            ("block", "ip", "203.0.113.9"),
            ("block", "ip", "garbage"),  # ignored, never a crash
        ]
    )
    r = rule(kind=Kind.BLOCKLIST, subject=Subject.IP)

    assert (decide([r], signals(ip=ip), lists=lists).action == Action.BLOCK) is listed


@pytest.mark.parametrize(
    ("ip", "entry"),
    [
        ("198.51.100.7", "198.51.100.0/24"),
        ("203.0.113.9", "203.0.113.9/32"),
        ("2001:db8::1:5", "2001:db8::/48"),
        ("0.1.2.3", "0.0.0.0/8"),
        ("::1", ""),  # zero high bits, but an IPv4 network never holds an IPv6 address
    ],
)
def test_ip_list_hit_names_the_listed_network(ip, entry):
    lists = lists_build(
        [
            ("block", "ip", "198.51.100.0/24"),
            ("block", "ip", "2001:db8::/48"),
            ("block", "ip", "203.0.113.9"),
            ("block", "ip", "0.0.0.0/8"),
        ]
    )
    r = rule(kind=Kind.BLOCKLIST, subject=Subject.IP)

    fired = decide([r], signals(ip=ip), lists=lists).fired

    assert [f.detail for f in fired] == ([f"ip listed: {entry}"] if entry else [])


@pytest.mark.parametrize(
    "email",
    [
        "bot@evil.example",
        "bot@EVIL.Example",
        "bot@evil.example.",
        "bot@ｅｖｉｌ．ｅｘａｍｐｌｅ",  # fullwidth letters and dot
        "bot＠evil.example",  # fullwidth at sign
        "bot@evil\u3002example",  # ideographic full stop
        "bot@ev\u200bil.example",  # zero-width space
        "bot@mx.evil.example",  # a subdomain
        " bot@evil.example ",
    ],
)
def test_email_domain_blocklist_sees_through_unicode_tricks(email):
    lists = lists_build([("block", "email_domain", "Evil.Example.")])
    r = rule(kind=Kind.BLOCKLIST, subject=Subject.EMAIL_DOMAIN)

    assert decide([r], signals(email=email), lists=lists).action == Action.BLOCK


@pytest.mark.parametrize(
    "email", ["bot@notevil.example", "bot@evil.example.org", "evil.example", ""]
)
def test_email_domain_blocklist_leaves_other_domains_alone(email):
    lists = lists_build([("block", "email_domain", "evil.example")])
    r = rule(kind=Kind.BLOCKLIST, subject=Subject.EMAIL_DOMAIN)

    assert decide([r], signals(email=email), lists=lists).action == Action.ALLOW


def test_email_domain_of_an_internationalised_domain_is_punycode():
    assert email_domain("a@MÜNCHEN.de") == "xn--mnchen-3ya.de"


@pytest.mark.parametrize(
    ("email", "disposable"),
    [
        ("x@mailinator.com", True),
        ("x@ＭＡＩＬＩＮＡＴＯＲ.com", True),
        ("x@inbox.mailinator.com", True),
        ("x@example.com", False),
        ("x@qq.com", False),
    ],
)
def test_disposable_email_rule(email, disposable):
    r = rule(kind=Kind.DISPOSABLE_EMAIL, subject="", action=Action.CAPTCHA)

    verdict = decide([r], signals(email=email))

    assert (verdict.action == Action.CAPTCHA) is disposable


@pytest.mark.parametrize(
    ("subject", "value", "signal"),
    [
        (Subject.DEVICE, "dev-1", {"device": "dev-1"}),
        (Subject.ACCOUNT, "7", {"user_id": 7}),
        (Subject.RECHARGE_ACCOUNT, "QQ123456", {"recharge_account": " qq123456 "}),
    ],
)
def test_blocklist_by_device_account_and_recharge_account(subject, value, signal):
    lists = lists_build([("block", subject, value)])
    r = rule(kind=Kind.BLOCKLIST, subject=subject)

    assert decide([r], signals(**signal), lists=lists).action == Action.BLOCK
    assert (
        decide(
            [r],
            signals(device="dev-2", user_id=8, recharge_account="other"),
            lists=lists,
        ).action
        == Action.ALLOW
    )
