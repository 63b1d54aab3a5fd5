"""Applying, the operator's decisions, the downline tree, binding and attribution."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from distribution.models import CustomerBinding, OrderAttribution, Reseller
from distribution.services import (
    DownlineError,
    ResellerError,
    customer_bind,
    order_attribute,
    reseller_apply,
    reseller_approve,
    reseller_bind_parent,
    reseller_reject,
    reseller_suspend,
)
from tests.factories.accounts import UserFactory
from tests.factories.distribution import LineSpec, ResellerFactory, delivered_order

pytestmark = pytest.mark.django_db
RS = Reseller.Status


def test_reseller_apply_opens_one_application_however_often_sent(alice):
    first = reseller_apply(user=alice, note="我有 500 人的群")
    again = reseller_apply(user=alice, note="再点一次")

    assert first.pk == again.pk
    assert again.status == RS.APPLIED
    assert again.application_note == "我有 500 人的群"
    assert len(again.referral_code) == 8


def test_reseller_apply_refused_for_an_approved_reseller(bob):
    with pytest.raises(ResellerError) as excinfo:
        reseller_apply(user=bob.user)

    assert excinfo.value.code == "already_reseller"


def test_reseller_approve_records_who_when_and_the_default_tier(alice, staff, tier):
    application = reseller_apply(user=alice)

    reseller = reseller_approve(reseller_id=application.pk, actor=staff)

    reseller.refresh_from_db()
    assert reseller.status == RS.APPROVED
    assert reseller.tier == tier
    assert reseller.status_changed_by == staff
    assert reseller.approved_at is not None
    assert reseller_approve(reseller_id=reseller.pk, actor=staff).status == RS.APPROVED


def test_reseller_approve_binds_under_whoever_referred_the_account(alice, staff, carol):
    customer_bind(user=alice, referral_code=carol.referral_code)
    application = reseller_apply(user=alice)

    reseller = reseller_approve(reseller_id=application.pk, actor=staff)

    assert (reseller.parent_id, reseller.depth) == (carol.pk, 3)


def test_reseller_approve_leaves_a_root_when_the_referrer_is_already_three_deep(
    alice, staff, dave
):
    customer_bind(user=alice, referral_code=dave.referral_code)
    application = reseller_apply(user=alice)

    reseller = reseller_approve(reseller_id=application.pk, actor=staff)

    assert (reseller.status, reseller.parent_id, reseller.depth) == (
        RS.APPROVED,
        None,
        1,
    )


def test_reseller_reject_needs_a_reason_and_allows_applying_again(alice, staff):
    application = reseller_apply(user=alice)
    with pytest.raises(ResellerError) as excinfo:
        reseller_reject(reseller_id=application.pk, actor=staff, reason="  ")
    assert excinfo.value.code == "reason_required"

    rejected = reseller_reject(
        reseller_id=application.pk, actor=staff, reason="资料不全"
    )
    again = reseller_apply(user=alice, note="补充了资料")

    assert (rejected.status, rejected.status_reason) == (RS.REJECTED, "资料不全")
    assert (again.status, again.status_reason) == (RS.APPLIED, "")


def test_reseller_reject_refused_for_an_approved_reseller(bob, staff):
    with pytest.raises(ResellerError) as excinfo:
        reseller_reject(reseller_id=bob.pk, actor=staff, reason="x")

    assert excinfo.value.code == "bad_move"


def test_reseller_suspend_then_approve_again(bob, staff):
    suspended = reseller_suspend(reseller_id=bob.pk, actor=staff, reason="窜货")
    with pytest.raises(ResellerError):
        reseller_apply(user=bob.user)

    back = reseller_approve(reseller_id=bob.pk, actor=staff)

    assert (suspended.status, suspended.status_reason) == (RS.SUSPENDED, "窜货")
    assert back.status == RS.APPROVED


def test_reseller_unknown_id_is_a_clear_error(staff):
    with pytest.raises(ResellerError) as excinfo:
        reseller_suspend(reseller_id=999999, actor=staff, reason="x")

    assert excinfo.value.code == "not_found"


# --- the tree -------------------------------------------------------------------


def test_bind_parent_moves_the_whole_downline_and_their_depths(bob):
    root = ResellerFactory()
    child = ResellerFactory(parent=root)

    reseller_bind_parent(reseller_id=root.pk, parent_id=bob.pk)

    root.refresh_from_db()
    child.refresh_from_db()
    assert (root.parent_id, root.depth, child.depth) == (bob.pk, 2, 3)


def test_bind_parent_refuses_a_tree_deeper_than_three_levels(carol):
    root = ResellerFactory()
    ResellerFactory(parent=root)

    with pytest.raises(DownlineError) as excinfo:
        reseller_bind_parent(reseller_id=root.pk, parent_id=carol.pk)

    assert excinfo.value.code == "too_deep"
    root.refresh_from_db()
    assert (root.parent_id, root.depth) == (None, 1)


@pytest.mark.parametrize("below", ["bob", "carol", "dave"])
def test_bind_parent_refuses_a_cycle(request, below):
    bob = request.getfixturevalue("bob")
    request.getfixturevalue("dave")
    target = request.getfixturevalue(below)

    with pytest.raises(DownlineError) as excinfo:
        reseller_bind_parent(reseller_id=bob.pk, parent_id=target.pk)

    assert excinfo.value.code == "cycle"


def test_bind_parent_refuses_a_second_upline_but_repeats_the_first(bob, carol):
    other = ResellerFactory()

    assert reseller_bind_parent(reseller_id=carol.pk, parent_id=bob.pk).pk == carol.pk
    with pytest.raises(DownlineError) as excinfo:
        reseller_bind_parent(reseller_id=carol.pk, parent_id=other.pk)

    assert excinfo.value.code == "has_parent"


def test_bind_parent_refuses_an_unapproved_upline(bob, alice):
    applicant = reseller_apply(user=alice)

    with pytest.raises(DownlineError) as excinfo:
        reseller_bind_parent(reseller_id=bob.pk, parent_id=applicant.pk)

    assert excinfo.value.code == "parent_not_approved"


def test_database_refuses_a_depth_beyond_three(dave):
    with pytest.raises(IntegrityError), transaction.atomic():
        Reseller.objects.filter(pk=dave.pk).update(depth=4)


# --- binding shoppers and crediting orders ---------------------------------------------


def test_customer_bind_keeps_the_first_referrer(alice, bob, carol):
    customer_bind(user=alice, referral_code=bob.referral_code.lower())

    binding = customer_bind(user=alice, referral_code=carol.referral_code)

    assert binding.reseller == bob


def test_customer_bind_never_binds_a_reseller_to_themselves(bob):
    assert customer_bind(user=bob.user, referral_code=bob.referral_code) is None
    assert customer_bind(user=bob.user, referral_code="NOSUCHCODE") is None
    assert CustomerBinding.objects.count() == 0


def test_order_attribute_prefers_the_link_then_the_binding(alice, bob, carol, sku):
    customer_bind(user=alice, referral_code=bob.referral_code)
    by_link = delivered_order(alice, [LineSpec(sku, amount="1.00")])
    bound = delivered_order(alice, [LineSpec(sku, amount="1.00")])

    linked = order_attribute(order=by_link, referral_code=carol.referral_code)
    fallback = order_attribute(order=bound, referral_code="")

    assert (linked.reseller, linked.channel) == (carol, "referral_link")
    assert (fallback.reseller, fallback.channel) == (bob, "bound_customer")
    # The first attribution stays.
    assert order_attribute(order=by_link, referral_code=bob.referral_code) == linked


def test_order_attribute_through_a_substore(alice, bob, sku):
    Reseller.objects.filter(pk=bob.pk).update(substore_slug="bobs")
    order = delivered_order(alice, [LineSpec(sku, amount="1.00")])

    attribution = order_attribute(order=order, substore_slug="bobs")

    assert (attribution.reseller, attribution.channel) == (bob, "substore")


def test_order_attribute_never_credits_the_buyer(bob, sku):
    order = delivered_order(bob.user, [LineSpec(sku, amount="1.00")])

    assert order_attribute(order=order, referral_code=bob.referral_code) is None
    assert OrderAttribution.objects.count() == 0


def test_order_attribute_ignores_an_unapproved_reseller(alice, staff, sku):
    applicant = reseller_apply(user=UserFactory())
    order = delivered_order(alice, [LineSpec(sku, amount="1.00")])

    assert order_attribute(order=order, referral_code=applicant.referral_code) is None
