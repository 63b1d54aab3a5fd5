"""The risk admin: rules checked per kind at their fields, lists normalised, evaluations read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from risk.forms import RiskListEntryForm, RiskRuleForm
from risk.models import RiskEvaluation, RiskListEntry, RiskRule
from tests.factories.risk import RiskListEntryFactory, RiskRuleFactory

K = RiskRule.Kind
pytestmark = pytest.mark.django_db


def _rule_form(**data):
    base = {
        "name": "r",
        "kind": K.VELOCITY_ORDERS,
        "stage": "checkout",
        "action": "block",
        "priority": 100,
        "active": True,
        "scope": "all",
        "subject": "device",
        "window_seconds": 3600,
        "threshold": "5",
    }
    base.update(data)
    return RiskRuleForm(data={k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "email_domain"}, "subject"),
        ({"window_seconds": None}, "window_seconds"),
        ({"threshold": None}, "threshold"),
        ({"threshold": "2.5"}, "threshold"),
        ({"threshold": "-1"}, "threshold"),
        ({"kind": K.VELOCITY_AMOUNT, "window_seconds": None}, "window_seconds"),
        (
            {"kind": K.NEW_ACCOUNT, "subject": "", "window_seconds": None},
            "window_seconds",
        ),
        ({"kind": K.DISTINCT_RECHARGE_ACCOUNTS, "subject": "ip"}, "subject"),
        ({"kind": K.UNPAID_ORDERS, "subject": "recharge_account"}, "subject"),
        ({"kind": K.BLOCKLIST, "subject": ""}, "subject"),
        ({"kind": K.ALLOWLIST, "subject": "ip", "action": "block"}, "action"),
        ({"action": "allow"}, "action"),
        ({"scope": "sku"}, "sku"),
        ({"scope": "platform"}, "platform"),
    ],
)
def test_rule_form_puts_the_error_at_the_field(data, field):
    form = _rule_form(**data)

    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_rule_form_accepts_each_kind_with_its_parameters(sku):
    valid = [
        {},
        {"kind": K.VELOCITY_AMOUNT, "threshold": "99.50", "subject": "ip"},
        {
            "kind": K.SKU_LIMIT,
            "subject": "",
            "window_seconds": None,
            "scope": "sku",
            "sku": sku.pk,
        },
        {"kind": K.ORDER_QUANTITY, "subject": "", "window_seconds": None},
        {"kind": K.NEW_ACCOUNT, "subject": "", "threshold": "200"},
        {"kind": K.DISTINCT_RECHARGE_ACCOUNTS, "subject": "account"},
        {"kind": K.UNPAID_ORDERS, "subject": "ip", "window_seconds": None},
        {"kind": K.BLOCKLIST, "subject": "email_domain", "threshold": None},
        {"kind": K.ALLOWLIST, "subject": "ip", "action": "allow"},
        {"kind": K.DISPOSABLE_EMAIL, "subject": "", "action": "captcha"},
        {"scope": "platform", "platform": sku.product.platform_id},
    ]
    for data in valid:
        form = _rule_form(**data)
        assert form.is_valid(), (data, form.errors)
    saved = _rule_form(kind=K.SKU_LIMIT, subject="", scope="all").save()
    assert (saved.subject, saved.platform_id, saved.sku_id) == ("account", None, None)


@pytest.mark.parametrize(
    ("subject", "value", "stored"),
    [
        ("ip", " 203.0.113.7 ", "203.0.113.7"),
        ("ip", "203.0.113.7/24", "203.0.113.0/24"),
        ("ip", "2001:DB8::/32", "2001:db8::/32"),
        ("email_domain", "@ＭＡＩＬＩＮＡＴＯＲ.com.", "mailinator.com"),
        ("email_domain", "MÜNCHEN.de", "xn--mnchen-3ya.de"),
        ("account", "0042", "42"),
        ("recharge_account", " QQ123 ", "qq123"),
        ("device", "abc", "abc"),
    ],
)
def test_list_entry_form_normalises_values(subject, value, stored):
    form = RiskListEntryForm(
        data={"list_kind": "block", "subject": subject, "value": value, "active": True}
    )

    assert form.is_valid(), form.errors
    assert form.save().value == stored


@pytest.mark.parametrize(
    ("subject", "value"),
    [
        ("ip", "203.0.113"),
        ("ip", "evil.example"),
        ("ip", "10.0.0.0/33"),
        ("email_domain", "localhost"),
        ("email_domain", "a b.com"),
        ("account", "alice"),
        ("account", "４２"),  # fullwidth digits
        ("device", "   "),
    ],
)
def test_list_entry_form_refuses_bad_values_at_the_field(subject, value):
    form = RiskListEntryForm(
        data={"list_kind": "block", "subject": subject, "value": value, "active": True}
    )

    assert not form.is_valid()
    assert list(form.errors) == ["value"]


def test_list_entry_form_refuses_a_duplicate_after_normalising():
    RiskListEntryFactory(subject="email_domain", value="mailinator.com")
    form = RiskListEntryForm(
        data={
            "list_kind": "block",
            "subject": "email_domain",
            "value": "MAILINATOR.COM",
            "active": True,
        }
    )

    assert not form.is_valid()


def test_risk_admin_pages_answer_for_a_superuser(admin_client, admin_user, sku):
    rule = RiskRuleFactory(scope="sku", sku=sku)
    entry = RiskListEntryFactory()
    evaluation = RiskEvaluation.objects.create(
        stage="checkout",
        decision="block",
        fired=[
            {
                "rule_id": rule.pk,
                "name": "<b>x</b>",
                "kind": "velocity_orders",
                "action": "block",
                "detail": "orders per device in 3600s: 6 > 5",
            }
        ],
        inputs={
            "email_domain": "example.com",
            "counts": [
                {
                    "metric": "orders",
                    "subject": "device",
                    "scope": "all",
                    "window": 3600,
                    "value": "6",
                }
            ],
        },
        ip_address="198.51.100.7",
    )
    pages = [
        reverse("admin:risk_riskrule_changelist"),
        reverse("admin:risk_riskrule_add"),
        reverse("admin:risk_riskrule_change", args=[rule.pk]),
        reverse("admin:risk_risklistentry_changelist"),
        reverse("admin:risk_risklistentry_add"),
        reverse("admin:risk_risklistentry_change", args=[entry.pk]),
        reverse("admin:risk_riskevaluation_changelist") + "?decision__exact=block",
        reverse("admin:risk_riskevaluation_change", args=[evaluation.pk]),
    ]

    for page in pages:
        assert admin_client.get(page).status_code == 200, page
    detail = admin_client.get(pages[-1]).content.decode()
    assert "orders per device in 3600s: 6 &gt; 5" in detail
    assert "&lt;b&gt;x&lt;/b&gt;" in detail  # an operator-typed rule name is escaped


def test_evaluations_cannot_be_added_changed_or_deleted(admin_client):
    evaluation = RiskEvaluation.objects.create(stage="checkout", decision="allow")

    add = admin_client.get(reverse("admin:risk_riskevaluation_add"))
    delete = admin_client.post(
        reverse("admin:risk_riskevaluation_delete", args=[evaluation.pk]),
        {"post": "yes"},
    )

    assert (add.status_code, delete.status_code) == (403, 403)
    assert RiskEvaluation.objects.filter(pk=evaluation.pk).exists()


def test_admin_add_rule_shows_errors_and_list_entry_records_its_creator(
    admin_client, admin_user
):
    bad = admin_client.post(
        reverse("admin:risk_riskrule_add"),
        {
            "name": "x",
            "kind": K.VELOCITY_ORDERS,
            "stage": "checkout",
            "action": "block",
            "priority": 100,
            "scope": "all",
            "subject": "device",
            "threshold": "5",
        },
    )
    ok = admin_client.post(
        reverse("admin:risk_risklistentry_add"),
        {
            "list_kind": "block",
            "subject": "ip",
            "value": "192.0.2.0/24",
            "note": "",
            "active": "on",
        },
    )

    assert bad.status_code == 200
    assert "此类型的规则必须填写这一项" in bad.content.decode()
    assert not RiskRule.objects.exists()
    assert ok.status_code == 302
    assert RiskListEntry.objects.get().created_by == admin_user


def test_changelist_edits_priority_and_active_in_place(admin_client):
    rule = RiskRuleFactory(threshold=Decimal(5))
    url = reverse("admin:risk_riskrule_changelist")

    response = admin_client.post(
        url,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(rule.pk),
            "form-0-priority": "7",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.priority, rule.active) == (7, False)
