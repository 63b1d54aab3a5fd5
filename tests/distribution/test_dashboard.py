"""The reseller dashboard (/reseller/): own data only, KPIs that match the ledger, payouts, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from distribution.models import CommissionEntry, Payout, Reseller
from distribution.services import (
    commission_settle,
    payout_request,
    reseller_suspend,
)
from tests.distribution.dashboard_story import DAY, entries_of, month_of, sale
from tests.factories.accounts import UserFactory
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.distribution import ResellerFactory

D = Decimal
DASHBOARD = "/reseller/"
LEDGER_CSV = "/reseller/ledger.csv"
# User, reseller, balances, KPI ledger + sales, chart, entries, downline + its
# sales, platforms + products, payouts: 12 whatever the data, plus the session row
# when sessions are not cached (no REDIS_URL).
DASHBOARD_MAX_QUERIES = 13


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def erin(tier, rules, payout_minimum):
    """Another root reseller, with a buyer, an order, entries and an open payout of her own."""
    erin = ResellerFactory(user=UserFactory(username="erin"), tier=tier)
    buyer = UserFactory(username="zed", email="zed.secret@erin-buyers.test")
    sku = SkuFactory(product=ProductFactory(name="艾琳专供会员"), price=D("300.00"))
    sale(buyer, erin, sku, "300.00", timezone.now() - 20 * DAY)
    commission_settle(now=timezone.now() - 12 * DAY)
    payout_request(reseller_id=erin.pk)
    return erin


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
class TestAccess:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", DASHBOARD),
            ("get", "/reseller/entries/"),
            ("get", "/reseller/entries/1/"),
            ("get", "/reseller/payouts/1/"),
            ("get", "/reseller/payouts/1/ledger.csv"),
            ("get", LEDGER_CSV),
            ("post", "/reseller/payouts/"),
        ],
    )
    def test_reseller_pages_send_anonymous_visitors_to_log_in(
        self, client, method, path
    ):
        response = getattr(client, method)(path)

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))

    def test_dashboard_sends_a_shopper_who_is_no_reseller_to_apply(self, alice_client):
        response = alice_client.get(DASHBOARD)

        assert response.status_code == 302
        assert response["Location"] == "/reseller/apply/"

    @pytest.mark.parametrize(
        "path", ["/reseller/entries/", LEDGER_CSV, "/reseller/payouts/1/"]
    )
    def test_ledger_pages_are_not_found_for_a_shopper_who_is_no_reseller(
        self, alice_client, path
    ):
        assert alice_client.get(path).status_code == 404

    def test_suspended_reseller_loses_the_dashboard_ledger_and_payouts(
        self, bob, bob_client, story, staff
    ):
        reseller_suspend(reseller_id=bob.pk, actor=staff, reason="违规推广")
        entry = entries_of(bob)[0]

        dashboard = bob_client.get(DASHBOARD, follow=True)

        assert dashboard.redirect_chain == [("/reseller/apply/", 302)]
        assert "违规推广" in _html(dashboard)
        assert bob_client.get(f"/reseller/entries/{entry.pk}/").status_code == 404
        assert (
            bob_client.get(f"/reseller/payouts/{story.payout.pk}/").status_code == 404
        )
        assert bob_client.get(LEDGER_CSV).status_code == 404
        assert (
            bob_client.post("/reseller/payouts/", {"amount": "10.00"}).status_code
            == 404
        )
        assert Payout.objects.filter(reseller=bob).count() == 1  # the old, paid one

    def test_applicant_is_shown_the_application_not_a_dashboard(
        self, alice_client, alice
    ):
        Reseller.objects.create(user=alice)

        response = alice_client.get(DASHBOARD, follow=True)

        assert response.redirect_chain == [("/reseller/apply/", 302)]
        assert "待审核" in _html(response)


@pytest.mark.django_db
class TestOwnDataOnly:
    def test_entry_of_another_reseller_is_not_found(self, bob_client, story, erin):
        theirs = entries_of(erin)[0]

        response = bob_client.get(f"/reseller/entries/{theirs.pk}/")

        assert response.status_code == 404
        assert "zed" not in _html(response)

    def test_payout_of_another_reseller_is_not_found(self, bob_client, story, erin):
        theirs = Payout.objects.get(reseller=erin)

        assert bob_client.get(f"/reseller/payouts/{theirs.pk}/").status_code == 404
        assert (
            bob_client.get(f"/reseller/payouts/{theirs.pk}/ledger.csv").status_code
            == 404
        )

    def test_unknown_ids_are_not_found(self, bob_client, story):
        assert bob_client.get("/reseller/entries/999999/").status_code == 404
        assert bob_client.get("/reseller/payouts/999999/").status_code == 404

    def test_csv_export_holds_only_the_resellers_own_entries(
        self, bob, bob_client, story, erin
    ):
        rows = _csv(bob_client.get(LEDGER_CSV))

        ids = {int(row[0]) for row in rows[1:]}
        assert ids == {e.pk for e in entries_of(bob)}
        assert not ids & {e.pk for e in entries_of(erin)}

    def test_dashboard_shows_nothing_of_another_reseller(self, bob_client, story, erin):
        html = _html(bob_client.get(DASHBOARD))

        assert "erin-buyers" not in html
        assert "¥30.00" not in html  # her commission, available then requested
        assert erin.referral_code not in html

    def test_payout_request_only_ever_touches_the_resellers_own_balance(
        self, bob, bob_client, story, erin
    ):
        held_before = CommissionEntry.objects.filter(
            reseller=erin, payout__isnull=False
        ).count()

        bob_client.post("/reseller/payouts/", {"amount": "10.00"})

        assert Payout.objects.get(reseller=bob, status="requested").amount == D("10.00")
        assert (
            CommissionEntry.objects.filter(reseller=erin, payout__isnull=False).count()
            == held_before
        )

    def test_own_entry_shows_its_order_with_the_buyer_masked(
        self, bob, bob_client, story
    ):
        entry = next(e for e in entries_of(bob) if e.kind == "reverse")
        order = story.orders["E2"]

        response = bob_client.get(f"/reseller/entries/{entry.pk}/")

        html = _html(response)
        assert response.status_code == 200
        assert "a***@example.com" in html
        assert "alice@example.com" not in html
        assert order.number not in html
        assert order.number[-6:] in html
        assert "−¥5.00" in html
        assert "¥15.00" in html  # the earn it claws back, listed beside it


@pytest.mark.django_db
class TestKpis:
    def test_balances_and_kpis_match_the_ledger(self, bob_client, story):
        response = bob_client.get(DASHBOARD)

        assert response.status_code == 200
        balances = response.context["balances"]
        assert (
            balances.pending,
            balances.available,
            balances.requested,
            balances.paid,
        ) == (
            D("10.00"),
            D("10.00"),
            D("0.00"),
            D("20.00"),
        )
        kpis = {k.key: k for k in response.context["kpis"]}
        shown = {
            key: (
                k.orders,
                k.sales,
                k.commission,
                k.pending,
                k.available,
                k.requested,
                k.paid,
            )
            for key, k in kpis.items()
        }
        assert shown == {
            "today": (
                1,
                D("50.00"),
                D("5.00"),
                D("5.00"),
                D("0.00"),
                D("0.00"),
                D("0.00"),
            ),
            "d7": (
                3,
                D("100.00"),
                D("5.00"),
                D("10.00"),
                D("-5.00"),
                D("0.00"),
                D("0.00"),
            ),
            "d30": (
                5,
                D("400.00"),
                D("40.00"),
                D("10.00"),
                D("10.00"),
                D("0.00"),
                D("20.00"),
            ),
        }

    def test_kpi_table_shows_the_numbers(self, bob_client, story):
        html = _html(bob_client.get(DASHBOARD))

        table = html[html.index('class="data-table kpi-table"') :]
        table = table[: table.index("</table>")]
        cells = re.findall(r'<td class="num">([^<]*)</td>', table)
        # rows: orders, sales, commission, pending, available, requested, paid
        assert cells[:3] == ["1", "3", "5"]
        assert cells[3:6] == ["¥50.00", "¥100.00", "¥400.00"]
        assert cells[12:15] == ["¥0.00", "−¥5.00", "¥10.00"]

    def test_chart_and_its_table_give_each_days_net_commission(
        self, bob_client, story, now
    ):
        response = bob_client.get(DASHBOARD)

        daily = dict(response.context["daily"])
        today = timezone.localdate(now)
        assert len(daily) == 30
        assert daily[today] == D("5.00")
        assert daily[today - dt.timedelta(days=1)] == D("-8.00")  # −5 reverse, −3 void
        assert daily[today - dt.timedelta(days=3)] == D(
            "8.00"
        )  # E3 voided: not counted
        assert daily[today - dt.timedelta(days=10)] == D("15.00")
        assert daily[today - dt.timedelta(days=20)] == D("20.00")
        assert sum(daily.values()) == D("40.00")
        html = _html(response)
        assert html.count('<rect class="chart__bar') == 5
        assert html.count("chart__bar--negative") == 1
        assert 'aria-labelledby="daily-caption"' in html

    def test_recent_entries_never_show_a_buyers_address_or_a_code(
        self, bob_client, story
    ):
        html = _html(bob_client.get(DASHBOARD))

        assert "a***@example.com" in html
        assert "alice@example.com" not in html
        for order in story.orders.values():
            assert order.number not in html

    def test_dashboard_query_count_does_not_grow_with_entries_or_downline(
        self,
        bob,
        bob_client,
        story,
        carol,
        dave,
        alice,
        sku,
        now,
        django_assert_max_num_queries,
    ):
        with CaptureQueriesContext(connection) as small:
            bob_client.get(DASHBOARD)
        for n in range(6):
            sale(alice, bob, sku, "20.00", now - n * DAY)
            sale(alice, carol, sku, "30.00", now - n * DAY, earn=False)
            sale(alice, dave, sku, "40.00", now - n * DAY, earn=False)
            ResellerFactory(parent=carol, tier=carol.tier)
            SkuFactory()

        with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
            response = bob_client.get(DASHBOARD)

        assert response.status_code == 200
        assert len(response.context["entries"]) == 10
        with CaptureQueriesContext(connection) as large:
            bob_client.get(DASHBOARD)
        assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.django_db
class TestDownlineAndShare:
    def test_downline_tree_lists_each_member_with_their_sales(
        self, bob, bob_client, carol, dave, alice, sku, now
    ):
        carol.substore_name = "卡萝的小店"
        carol.save()
        sale(alice, carol, sku, "60.00", now - 2 * DAY, earn=False)
        sale(alice, dave, sku, "40.00", now - 2 * DAY, earn=False)
        sale(alice, dave, sku, "45.50", now - 40 * DAY, earn=False)

        response = bob_client.get(DASHBOARD)

        (top,) = response.context["downline"]
        assert (top.name, top.orders, top.sales) == ("卡萝的小店", 1, D("60.00"))
        (below,) = top.children
        assert (below.name, below.orders, below.sales, below.level) == (
            "d***@example.com",
            2,
            D("85.50"),
            2,
        )
        html = _html(response)
        assert "卡萝的小店" in html
        assert "¥85.50" in html

    def test_share_links_carry_the_referral_code_with_qr_codes(
        self, bob, bob_client, sku, settings
    ):
        settings.SITE_URL = "https://shop.example.cn"
        bob.substore_slug = "bobs-shop"
        bob.save()

        html = _html(bob_client.get(DASHBOARD))

        code = bob.referral_code
        assert f'value="https://shop.example.cn/?ref={code}"' in html
        assert 'value="https://shop.example.cn/s/bobs-shop/"' in html
        product_url = f"https://shop.example.cn/p/{sku.product.slug}/?ref={code}"
        assert f'value="{product_url}"' in html
        assert html.count('<svg role="img"') == 3
        assert "<script" not in html.split("</footer>")[0]

    def test_share_section_says_when_there_is_no_substore_yet(self, bob_client, sku):
        html = _html(bob_client.get(DASHBOARD))

        assert "/s/" not in html
        assert "分站尚未开通" in html


@pytest.mark.django_db
def test_dashboard_speaks_english(bob_client, story):
    response = bob_client.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="en")

    main = _html(response).split("<main", 1)[1].split("</main>", 1)[0]
    for text in (
        "Reseller center",
        "Commission balances",
        "Daily commission, last 30 days",
        "Share links and QR codes",
        "Payout requests",
        "Export CSV",
    ):
        assert text in main
    for text in ("代理中心", "佣金余额", "推广链接与二维码", "提现记录", "待结算"):
        assert text not in main


@pytest.mark.django_db
def test_ledger_pages_list_only_the_resellers_own_entries(
    bob, bob_client, story, erin, alice, sku, now
):
    for n in range(15):
        sale(alice, bob, sku, "10.00", now - n * DAY)

    first = bob_client.get("/reseller/entries/")
    second = bob_client.get("/reseller/entries/?page=2")
    garbled = bob_client.get("/reseller/entries/?page=x")

    shown = [e.pk for e in first.context["entries"]] + [
        e.pk for e in second.context["entries"]
    ]
    assert sorted(shown) == sorted(e.pk for e in entries_of(bob))
    assert len(first.context["entries"]) == 20
    assert "第 2 / 2 页" in _html(second)
    assert garbled.status_code == 200
    assert garbled.context["page"].number == 1
    assert "zed" not in _html(first) + _html(second)
