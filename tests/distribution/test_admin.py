"""The operator's reseller admin: decisions through services, the reconcile report."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from distribution.models import CommissionEntry, Payout, Reseller
from distribution.services import (
    commission_on_line_delivered,
    commission_settle,
    payout_request,
    reseller_apply,
)
from tests.factories.accounts import UserFactory
from tests.factories.distribution import LineSpec, delivered_order, leaf_lines

pytestmark = pytest.mark.django_db
RESELLERS = reverse("admin:distribution_reseller_changelist")
PAYOUTS = reverse("admin:distribution_payout_changelist")
RECONCILE = reverse("admin:distribution_commissionentry_reconcile")


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def open_payout(alice, bob, rules, sku, payout_minimum):
    order = delivered_order(alice, [LineSpec(sku, amount="300.00")], reseller=bob)
    past = timezone.now() - dt.timedelta(days=8)
    commission_on_line_delivered(order_line_id=leaf_lines(order)[0].pk, now=past)
    commission_settle()
    return payout_request(reseller_id=bob.pk)


def act(client, url, action, ids, **extra):
    return client.post(
        url, {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra}
    )


def test_admin_approves_an_application(admin_client, alice, tier):
    application = reseller_apply(user=alice)

    response = act(admin_client, RESELLERS, "approve", [application.pk])

    assert response.status_code == 302
    application.refresh_from_db()
    assert (application.status, application.tier) == ("approved", tier)
    assert application.status_changed_by.username == "root"


def test_admin_reject_asks_for_a_reason_at_its_field(admin_client, alice):
    application = reseller_apply(user=alice)

    asked = act(admin_client, RESELLERS, "reject", [application.pk])
    blank = act(admin_client, RESELLERS, "reject", [application.pk], apply="1")
    done = act(
        admin_client,
        RESELLERS,
        "reject",
        [application.pk],
        apply="1",
        reason="资料不全",
    )

    assert asked.status_code == 200
    assert b'<label for="id_reason"' in asked.content
    assert "请填写原因" in blank.content.decode()
    assert done.status_code == 302
    application.refresh_from_db()
    assert (application.status, application.status_reason) == ("rejected", "资料不全")


def test_admin_refusal_is_a_message_not_an_error(admin_client, bob):
    response = act(admin_client, RESELLERS, "reject", [bob.pk], apply="1", reason="x")

    assert response.status_code == 302
    page = admin_client.get(RESELLERS).content.decode()
    assert "未执行" in page
    assert Reseller.objects.get(pk=bob.pk).status == "approved"


def test_admin_reseller_add_is_not_offered(admin_client):
    assert (
        admin_client.get(reverse("admin:distribution_reseller_add")).status_code == 403
    )


def test_admin_payout_approve_needs_a_reference_per_payout(admin_client, open_payout):
    asked = act(admin_client, PAYOUTS, "approve", [open_payout.pk])
    missing = act(admin_client, PAYOUTS, "approve", [open_payout.pk], apply="1")
    done = act(
        admin_client,
        PAYOUTS,
        "approve",
        [open_payout.pk],
        apply="1",
        **{f"value_{open_payout.pk}": "ZFB-1"},
    )

    assert f'id="id_value_{open_payout.pk}"' in asked.content.decode()
    assert "请填写转账凭证号" in missing.content.decode()
    assert done.status_code == 302
    open_payout.refresh_from_db()
    assert (open_payout.status, open_payout.transfer_reference) == ("approved", "ZFB-1")
    assert set(CommissionEntry.objects.values_list("state", flat=True)) == {"paid"}


def test_admin_payout_reject_with_reason(admin_client, open_payout):
    act(admin_client, PAYOUTS, "reject", [open_payout.pk], apply="1", reason="账户有误")

    open_payout.refresh_from_db()
    assert (open_payout.status, open_payout.reason) == ("rejected", "账户有误")


def test_admin_ledger_is_read_only(admin_client, open_payout):
    entry = CommissionEntry.objects.first()

    page = admin_client.get(
        reverse("admin:distribution_commissionentry_change", args=[entry.pk])
    )

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert (
        admin_client.get(reverse("admin:distribution_commissionentry_add")).status_code
        == 403
    )


def test_admin_reconcile_report_lists_discrepancies(admin_client, open_payout):
    clean = admin_client.get(RECONCILE).content.decode()
    Payout.objects.filter(pk=open_payout.pk).update(amount=Decimal("1.00"))

    broken = admin_client.get(RECONCILE).content.decode()

    assert 'id="reconciled"' in clean
    assert 'id="discrepancies"' in broken
    assert f"payout #{open_payout.pk}" in broken


def test_admin_reconcile_report_needs_view_permission(client, open_payout):
    client.force_login(UserFactory(username="nobody", is_staff=True))

    assert client.get(RECONCILE).status_code == 403
