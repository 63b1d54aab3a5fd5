"""Payouts: request the available balance, approve with a transfer reference, reject."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from distribution.models import CommissionEntry, Payout, Reseller
from distribution.selectors import Balances, reseller_balance_get
from distribution.services import (
    PayoutError,
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
    payout_approve,
    payout_reject,
    payout_request,
)
from orders.services import refund_request
from tests.factories.distribution import LineSpec, delivered_order, leaf_lines

D = Decimal
NOW = dt.datetime(2027, 3, 1, 4, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=8)


def earn(buyer, reseller, sku, amount, *, settle=True):
    """A delivered order credited to `reseller`, its commission settled when asked."""
    order = delivered_order(buyer, [LineSpec(sku, amount=amount)], reseller=reseller)
    for line in leaf_lines(order):
        commission_on_line_delivered(order_line_id=line.pk, now=NOW)
    if settle:
        commission_settle(now=LATER)
    return order


@pytest.fixture
def funded_bob(alice, bob, rules, sku, payout_minimum):
    """bob with 30.00 available (10 % of 300.00)."""
    earn(alice, bob, sku, "300.00")
    return bob


@pytest.mark.django_db
class TestPayouts:
    def test_payout_request_holds_the_whole_available_balance(self, funded_bob):
        payout = payout_request(reseller_id=funded_bob.pk, now=LATER)

        assert (payout.amount, payout.status) == (D("30.00"), "requested")
        assert reseller_balance_get(reseller_id=funded_bob.pk) == Balances(
            requested=D("30.00")
        )

    def test_payout_request_refused_below_the_minimum(
        self, alice, bob, rules, sku, payout_minimum
    ):
        earn(alice, bob, sku, "99.90")  # 9.99 available

        with pytest.raises(PayoutError) as excinfo:
            payout_request(reseller_id=bob.pk)

        assert excinfo.value.code == "below_minimum"
        assert "9.99" in excinfo.value.message
        assert Payout.objects.count() == 0

    def test_pending_commission_cannot_be_withdrawn(
        self, alice, bob, rules, sku, payout_minimum
    ):
        earn(alice, bob, sku, "500.00", settle=False)

        with pytest.raises(PayoutError) as excinfo:
            payout_request(reseller_id=bob.pk)

        assert excinfo.value.code == "below_minimum"

    def test_payout_request_refused_while_one_is_open(self, alice, funded_bob, sku):
        payout_request(reseller_id=funded_bob.pk)
        earn(alice, funded_bob, sku, "300.00")  # 30.00 more, settled

        with pytest.raises(PayoutError) as excinfo:
            payout_request(reseller_id=funded_bob.pk)

        assert excinfo.value.code == "payout_open"
        assert reseller_balance_get(reseller_id=funded_bob.pk) == Balances(
            available=D("30.00"), requested=D("30.00")
        )

    def test_payout_request_refused_for_a_suspended_reseller(self, funded_bob):
        Reseller.objects.filter(pk=funded_bob.pk).update(status="suspended")

        with pytest.raises(PayoutError) as excinfo:
            payout_request(reseller_id=funded_bob.pk)

        assert excinfo.value.code == "not_approved"

    def test_payout_approve_pays_the_held_entries(self, funded_bob, staff):
        payout = payout_request(reseller_id=funded_bob.pk)

        approved = payout_approve(
            payout_id=payout.pk, actor=staff, transfer_reference=" ZFB-2027-0001 "
        )

        assert (approved.status, approved.transfer_reference) == (
            "approved",
            "ZFB-2027-0001",
        )
        assert (approved.decided_by, approved.decided_at is not None) == (staff, True)
        assert reseller_balance_get(reseller_id=funded_bob.pk) == Balances(
            paid=D("30.00")
        )
        assert set(
            CommissionEntry.objects.filter(reseller=funded_bob).values_list(
                "state", flat=True
            )
        ) == {"paid"}
        # Approving again changes nothing; rejecting it now is refused.
        assert (
            payout_approve(
                payout_id=payout.pk, actor=staff, transfer_reference="X"
            ).transfer_reference
            == "ZFB-2027-0001"
        )
        with pytest.raises(PayoutError) as excinfo:
            payout_reject(payout_id=payout.pk, actor=staff, reason="重复")
        assert excinfo.value.code == "decided"

    def test_payout_approve_needs_a_transfer_reference(self, funded_bob, staff):
        payout = payout_request(reseller_id=funded_bob.pk)

        with pytest.raises(PayoutError) as excinfo:
            payout_approve(payout_id=payout.pk, actor=staff, transfer_reference="  ")

        assert excinfo.value.code == "reference_required"
        payout.refresh_from_db()
        assert payout.status == "requested"

    def test_payout_reject_releases_the_balance(self, funded_bob, staff):
        payout = payout_request(reseller_id=funded_bob.pk)
        with pytest.raises(PayoutError):
            payout_reject(payout_id=payout.pk, actor=staff, reason="")

        rejected = payout_reject(
            payout_id=payout.pk, actor=staff, reason="账户信息有误"
        )

        assert (rejected.status, rejected.reason) == ("rejected", "账户信息有误")
        assert reseller_balance_get(reseller_id=funded_bob.pk) == Balances(
            available=D("30.00")
        )
        with pytest.raises(PayoutError) as excinfo:
            payout_approve(payout_id=payout.pk, actor=staff, transfer_reference="T1")
        assert excinfo.value.code == "decided"
        # The released balance can be asked for again.
        assert payout_request(reseller_id=funded_bob.pk).amount == D("30.00")

    def test_payout_unknown_id_is_a_clear_error(self, staff):
        with pytest.raises(PayoutError) as excinfo:
            payout_approve(payout_id=999999, actor=staff, transfer_reference="T")

        assert excinfo.value.code == "not_found"

    def test_refund_after_payout_takes_available_below_zero_until_earnings_cover(
        self, alice, funded_bob, sku, staff
    ):
        payout = payout_request(reseller_id=funded_bob.pk)
        payout_approve(payout_id=payout.pk, actor=staff, transfer_reference="T1")
        order = Payout.objects.get(pk=payout.pk).entries.get().order_line.order
        line = leaf_lines(order)[0]
        refund_request(order=order, lines=[(line, D("300.00"))], reason="售后")
        commission_on_line_refunded(order_line_id=line.pk, refunded_amount=D("300.00"))

        assert reseller_balance_get(reseller_id=funded_bob.pk) == Balances(
            available=D("-30.00"), paid=D("30.00")
        )
        with pytest.raises(PayoutError):
            payout_request(reseller_id=funded_bob.pk)

        earn(alice, funded_bob, sku, "400.00")  # +40.00

        assert payout_request(reseller_id=funded_bob.pk).amount == D("10.00")

    def test_database_allows_one_open_payout_per_reseller(self, funded_bob):
        payout_request(reseller_id=funded_bob.pk)

        with pytest.raises(IntegrityError), transaction.atomic():
            Payout.objects.create(reseller=funded_bob, amount=D("1.00"))


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_payout_requests_withdraw_the_balance_once(
    alice, bob, rules, sku, payout_minimum
):
    earn(alice, bob, sku, "300.00")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def request() -> None:
        try:
            barrier.wait(timeout=5)
            payout_request(reseller_id=bob.pk)
            outcomes.append("payout")
        except PayoutError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["payout", "payout_open"]
    assert list(Payout.objects.values_list("amount", flat=True)) == [D("30.00")]
    assert reseller_balance_get(reseller_id=bob.pk) == Balances(requested=D("30.00"))
