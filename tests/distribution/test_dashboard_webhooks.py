"""A partner's webhook log on the reseller dashboard (/reseller/webhooks/, SPEC §4.4).

acme and globex are partners (API access, a webhook URL on loopback); their
orders go through the real partner API and their webhooks are POSTed over real
HTTP to a receiver that answers 500, then 200 from then on.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from distribution import views
from distribution.models import PartnerAccount, Reseller, WebhookDelivery
from distribution.webhooks import webhook_deliver, webhook_enqueue, webhook_secret_set
from orders.models import Order
from tests.distribution.api.conftest import COST, RETAIL, Partner, SignedClient
from tests.distribution.api.conftest import make_partner as _make_partner
from tests.distribution.api.receiver import WebhookReceiver
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import ResellerFactory, TierFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

WEBHOOKS = "/reseller/webhooks/"
DASHBOARD = "/reseller/"
CLOSED_PORT = "http://127.0.0.1:9/hooks"  # nothing listens: a connection error
# User, reseller (its tier and partner account joined), the count, the page of
# deliveries and their attempts: 5 whatever the data, plus the session row when
# sessions are not cached (no REDIS_URL).
WEBHOOKS_QUERIES = 5


@pytest.fixture
def receiver(settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    hook = WebhookReceiver(script=[500, 200])
    yield hook
    hook.stop()


@pytest.fixture
def partner_tier(db):
    return TierFactory(name="总代", discount_rate=Decimal("0.10"))


@pytest.fixture
def card_sku(db):
    sku = SkuFactory(code="TX-VIP-MONTH", price=RETAIL, max_per_order=5)
    stock_codes(sku, 30, cost_price=COST)
    return sku


def _partner(username: str, tier, receiver: WebhookReceiver) -> Partner:
    partner = _make_partner(username, tier=tier, balance=Decimal("500.00"))
    partner.account.webhook_url = receiver.url
    partner.account.save()
    webhook_secret_set(account=partner.account, secret=f"whsec-{username}")
    return partner


@pytest.fixture
def acme(partner_tier, receiver):
    return _partner("acme", partner_tier, receiver)


@pytest.fixture
def globex(partner_tier, receiver):
    return _partner("globex", partner_tier, receiver)


def _order(partner: Partner, out_trade_no: str) -> tuple[Order, list[str]]:
    """A card-code order through the signed API: the order and its codes as sent."""
    reply = SignedClient(Client(), partner).order(out_trade_no)
    assert reply.status_code == 201
    return Order.objects.get(number=reply.json()["number"]), reply.json()["codes"]


def _delivered(partner: Partner, out_trade_no: str) -> WebhookDelivery:
    """order.delivered for a new order, POSTed until the receiver's 2xx."""
    order, _codes = _order(partner, out_trade_no)
    delivery = webhook_enqueue(order_id=order.pk, status="delivered")
    now = delivery.next_attempt_at
    for _ in range(3):  # bounded: a bug must fail, not hang
        attempted = webhook_deliver(delivery_id=delivery.pk, now=now)
        if attempted.delivered:
            break
        now += dt.timedelta(seconds=attempted.retry_in + 1)
    delivery.refresh_from_db()
    return delivery


@pytest.fixture
def deliveries(acme, globex, card_sku, receiver):
    """(delivered, pending, globex's delivered, the codes of acme's orders)."""
    acme.account.webhook_url = CLOSED_PORT
    acme.account.save()
    pending_order, pending_codes = _order(acme, "ACME-2")
    pending = webhook_enqueue(order_id=pending_order.pk, status="delivered")
    webhook_deliver(delivery_id=pending.pk)
    pending.refresh_from_db()

    acme.account.webhook_url = receiver.url
    acme.account.save()
    delivered = _delivered(acme, "ACME-1")
    theirs = _delivered(globex, "GLOBEX-77")
    return delivered, pending, theirs, pending_codes


def _login(partner: Partner) -> Client:
    client = Client()
    client.force_login(partner.user)
    return client


def _html(response) -> str:
    return response.content.decode()


def _article(html: str, delivery: WebhookDelivery) -> str:
    """The card one delivery is shown in."""
    found = re.search(
        rf'<article class="card" aria-labelledby="delivery-{delivery.pk}-title">(.*?)</article>',
        html,
        re.S,
    )
    assert found, f"delivery {delivery.pk} is not on the page"
    return found.group(1)


def _cells(row: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def _attempt_rows(article: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", article, re.S)
    assert body
    return [_cells(row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_webhook_list_shows_each_delivery_newest_first_with_every_attempt(
    acme, deliveries
):
    delivered, pending, _theirs, _codes = deliveries

    response = _login(acme).get(WEBHOOKS)

    assert response.status_code == 200
    assert list(response.context["deliveries"]) == [delivered, pending]
    html = _html(response)
    done = _article(html, delivered)
    assert "order.delivered" in done
    assert "ACME-1" in done
    assert delivered.order.number in done
    assert "已送达" in done
    assert "2 次尝试" in done
    rows = _attempt_rows(done)
    assert [(r[0], r[2], r[4]) for r in rows] == [
        ("1", "500", "HTTP 500"),
        ("2", "200", "—"),
    ]
    assert all(re.fullmatch(r"\d+ 毫秒", r[3]) for r in rows)
    assert all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d", r[1]) for r in rows)

    waiting = _article(html, pending)
    assert "ACME-2" in waiting
    assert "待发送" in waiting
    assert "下次重试" in waiting
    [row] = _attempt_rows(waiting)
    assert row[2] == "无响应"
    assert row[4].startswith("ConnectError")


def test_webhook_list_never_shows_the_body_or_its_card_codes(acme, deliveries):
    _delivered, pending, _theirs, pending_codes = deliveries
    assert pending_codes  # the order's codes were in the body that was sent

    html = _html(_login(acme).get(WEBHOOKS))

    for code in pending_codes:
        assert code not in html
    assert pending.body_ciphertext not in html


def test_webhook_list_never_shows_another_partners_deliveries(acme, globex, deliveries):
    delivered, pending, theirs, _codes = deliveries

    # Ids of globex's rows in the query string change nothing: the page is the
    # signed-in partner's own.
    mine = _login(acme).get(
        WEBHOOKS,
        {
            "reseller": globex.account.reseller_id,
            "account": globex.account.pk,
            "delivery": theirs.pk,
        },
    )
    others = _login(globex).get(WEBHOOKS)

    assert list(mine.context["deliveries"]) == [delivered, pending]
    assert "GLOBEX-77" not in _html(mine)
    assert theirs.order.number not in _html(mine)
    assert list(others.context["deliveries"]) == [theirs]
    assert "ACME-1" not in _html(others)
    assert "ACME-2" not in _html(others)


def test_webhook_list_pages_through_the_deliveries(acme, deliveries, monkeypatch):
    delivered, pending, _theirs, _codes = deliveries
    monkeypatch.setattr(views, "WEBHOOKS_PER_PAGE", 1)
    client = _login(acme)

    first = client.get(WEBHOOKS)
    second = client.get(WEBHOOKS, {"page": "2"})
    beyond = client.get(WEBHOOKS, {"page": "99"})
    garbage = client.get(WEBHOOKS, {"page": "x"})

    assert list(first.context["deliveries"]) == [delivered]
    assert 'href="?page=2"' in _html(first)
    assert list(second.context["deliveries"]) == [pending]
    assert list(beyond.context["deliveries"]) == [pending]
    assert list(garbage.context["deliveries"]) == [delivered]


def test_webhook_list_says_so_when_nothing_was_sent_yet(acme):
    html = _html(_login(acme).get(WEBHOOKS))

    assert "还没有推送记录" in html
    assert acme.account.webhook_url in html


def test_webhook_list_says_when_no_webhook_url_is_set(acme):
    PartnerAccount.objects.filter(pk=acme.account.pk).update(webhook_url="")

    html = _html(_login(acme).get(WEBHOOKS))

    assert "尚未设置回调地址" in html


def test_failed_delivery_says_retries_stopped(acme, card_sku, settings):
    acme.account.webhook_url = CLOSED_PORT
    acme.account.save()
    order, _codes = _order(acme, "ACME-9")
    delivery = webhook_enqueue(order_id=order.pk, status="delivered")
    # The last attempt, after the day is over: no retry is left.
    webhook_deliver(
        delivery_id=delivery.pk, now=delivery.give_up_at - dt.timedelta(seconds=1)
    )

    html = _html(_login(acme).get(WEBHOOKS))

    card = _article(html, delivery)
    assert "已放弃" in card
    assert "已停止重试" in card
    assert "下次重试" not in card


class TestAccess:
    def test_webhook_list_sends_anonymous_visitors_to_log_in(self, client):
        response = client.get(WEBHOOKS)

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))

    def test_webhook_list_is_not_found_for_a_reseller_without_api_access(
        self, partner_tier
    ):
        bob = ResellerFactory(user=UserFactory(username="bob"), tier=partner_tier)
        client = Client()
        client.force_login(bob.user)

        assert client.get(WEBHOOKS).status_code == 404
        dashboard = client.get(DASHBOARD)
        assert dashboard.status_code == 200
        assert WEBHOOKS not in _html(dashboard)

    def test_webhook_list_is_not_found_once_api_access_is_switched_off(
        self, acme, deliveries
    ):
        PartnerAccount.objects.filter(pk=acme.account.pk).update(is_enabled=False)
        client = _login(acme)

        assert client.get(WEBHOOKS).status_code == 404
        assert WEBHOOKS not in _html(client.get(DASHBOARD))

    def test_webhook_list_is_not_found_for_a_suspended_partner(self, acme, deliveries):
        Reseller.objects.filter(pk=acme.account.reseller_id).update(
            status=Reseller.Status.SUSPENDED
        )

        assert _login(acme).get(WEBHOOKS).status_code == 404

    def test_webhook_list_is_not_found_for_a_shopper(self, alice_client):
        assert alice_client.get(WEBHOOKS).status_code == 404

    def test_dashboard_links_the_webhook_log_of_a_partner(self, acme):
        html = _html(_login(acme).get(DASHBOARD))

        assert "Webhook 推送记录" in html
        assert f'href="{WEBHOOKS}"' in html
        assert acme.account.webhook_url in html


def test_webhook_list_in_english(acme, deliveries):
    delivered, _pending, _theirs, _codes = deliveries

    html = _html(_login(acme).get(WEBHOOKS, HTTP_ACCEPT_LANGUAGE="en"))
    dashboard = _html(_login(acme).get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="en"))

    assert "Webhook deliveries" in html
    assert "2 attempts" in _article(html, delivered)
    assert "Delivered" in _article(html, delivered)
    assert "Next retry" in html
    assert "No response" in html
    assert " ms" in html
    assert "推送" not in html
    assert "Webhook deliveries" in dashboard


def test_webhook_list_query_count_is_fixed(
    acme, deliveries, django_assert_num_queries, settings
):
    client = _login(acme)
    expected = WEBHOOKS_QUERIES + (
        settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    )
    with django_assert_num_queries(expected):
        client.get(WEBHOOKS)
    for n in range(3):
        _delivered(acme, f"ACME-{10 + n}")  # one attempt each (200)

    with django_assert_num_queries(expected):
        response = client.get(WEBHOOKS)

    assert len(response.context["deliveries"]) == 5
