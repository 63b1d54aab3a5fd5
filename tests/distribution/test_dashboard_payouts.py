"""The dashboard's payout request (errors at the field, double-click safe) and CSV export."""

from __future__ import annotations

import csv
import io
import re
import threading
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from distribution.models import Payout
from distribution.services import commission_settle
from tests.distribution.dashboard_story import DAY, entries_of, month_of, sale
from tests.factories.accounts import UserFactory
from tests.factories.catalog import ProductFactory, SkuFactory

D = Decimal
LEDGER_CSV = "/reseller/ledger.csv"


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def story(bob, alice, sku, staff, rules, payout_minimum, now):
    return month_of(bob, alice, sku, staff, now)


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob.user)
    return client


def _html(response) -> str:
    return response.content.decode()


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.mark.django_db
class TestPayoutRequest:
    def test_payout_below_the_minimum_is_refused_at_the_field(
        self, bob, bob_client, alice, sku, rules, payout_minimum, now
    ):
        sale(alice, bob, sku, "99.90", now - 10 * DAY)  # 9.99
        commission_settle(now=now)

        response = bob_client.post("/reseller/payouts/", {"amount": "9.99"})

        assert response.status_code == 400
        html = _html(response)
        field = html[html.index('id="id_amount"') :]
        assert 'aria-invalid="true"' in field[: field.index(">")]
        errors = re.search(r'id="amount-errors"[^>]*>(.*?)</ul>', html, re.S).group(1)
        assert "¥9.99" in errors
        assert "¥10.00" in errors
        assert not Payout.objects.exists()

    def test_payout_request_twice_makes_one_request(self, bob, bob_client, story):
        first = bob_client.post("/reseller/payouts/", {"amount": "10.00"})
        second = bob_client.post("/reseller/payouts/", {"amount": "10.00"}, follow=True)

        assert first.status_code == 302
        assert first["Location"] == "/reseller/#payouts"
        assert second.status_code == 200
        assert Payout.objects.filter(reseller=bob, status="requested").count() == 1
        html = _html(second)
        assert "已申请提现 ¥10.00" in html
        assert "正在审核" in html
        assert 'action="/reseller/payouts/"' not in html  # no form while one is open

    def test_payout_of_a_stale_amount_is_refused_with_the_new_balance(
        self, bob, bob_client, story
    ):
        response = bob_client.post("/reseller/payouts/", {"amount": "25.00"})

        assert response.status_code == 400
        assert "¥10.00" in re.search(
            r'id="amount-errors"[^>]*>(.*?)</ul>', _html(response), re.S
        ).group(1)
        assert 'value="10.00"' in _html(response)
        assert not Payout.objects.filter(reseller=bob, status="requested").exists()

    @pytest.mark.parametrize("amount", ["", "abc", "-1", "1e9999", "10.001"])
    def test_payout_with_a_garbled_amount_is_refused_at_the_field(
        self, bob, bob_client, story, amount
    ):
        response = bob_client.post("/reseller/payouts/", {"amount": amount})

        assert response.status_code == 400
        assert 'id="amount-errors"' in _html(response)
        assert not Payout.objects.filter(reseller=bob, status="requested").exists()

    def test_payout_request_needs_post(self, bob_client):
        assert bob_client.get("/reseller/payouts/").status_code == 405

    def test_payout_page_lists_the_entries_it_paid(self, bob_client, story):
        response = bob_client.get(f"/reseller/payouts/{story.payout.pk}/")

        html = _html(response)
        assert response.status_code == 200
        assert "BANK-0001" in html
        assert "¥20.00" in html
        rows = _csv(bob_client.get(f"/reseller/payouts/{story.payout.pk}/ledger.csv"))
        assert [(row[5], row[12]) for row in rows[1:]] == [
            ("20.00", str(story.payout.pk))
        ]


@pytest.mark.django_db
class TestCsv:
    def test_csv_cells_that_look_like_formulas_are_escaped(
        self, bob, bob_client, rules, payout_minimum, now
    ):
        buyer = UserFactory(username="evil", email="=cmd|calc@evil.test")
        sku = SkuFactory(
            product=ProductFactory(name="@SUM(A1:A9)"), name="+1 月卡", price=D("50")
        )
        order = sale(buyer, bob, sku, "50.00", now)
        order.email = "-2+3@evil.test"
        order.save(update_fields=["email"])

        rows = _csv(bob_client.get(LEDGER_CSV))

        (row,) = rows[1:]
        assert row[5] == "5.00"
        assert row[9] == "'-***@evil.test"
        assert row[10] == "'@SUM(A1:A9)"
        assert row[11] == "'+1 月卡"
        assert rows[0][:3] == ["编号", "时间", "类型"]

    def test_csv_export_lists_every_entry_with_its_sign(self, bob, bob_client, story):
        response = bob_client.get(LEDGER_CSV)

        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert "attachment" in response["Content-Disposition"]
        rows = _csv(response)
        amounts = sorted(D(row[5]) for row in rows[1:])
        assert amounts == sorted(e.amount for e in entries_of(bob))
        assert all("alice@example.com" not in cell for row in rows for cell in row)


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_payout_clicks_make_one_request_and_both_succeed(bob, story):
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str]] = []

    def click() -> None:
        client = Client()
        client.force_login(bob.user)
        barrier.wait()
        try:
            response = client.post("/reseller/payouts/", {"amount": "10.00"})
            answers.append((response.status_code, response.get("Location", "")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [(302, "/reseller/#payouts")] * 2
    assert Payout.objects.filter(reseller=bob, status="requested").count() == 1
