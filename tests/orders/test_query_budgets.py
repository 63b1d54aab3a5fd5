"""Query budgets on the paid path: contracts. Raising one needs a reason in a note.

Set in issue 6 to what the paid path then took, as the test database counts them
(every `atomic()` is a savepoint inside the test's transaction). Work queued for
after commit (the delivery email's dispatch, a top-up's first step) is not
counted: in tests it would run the Celery task eagerly.

| request | before issue 6 | issue 6 | paid path, session 4 | session 5b | session 7 |
|---|---|---|---|---|---|
| checkout POST, one card-code line | 16 | 13 (15 with risk, issue 7) | 10 with risk | 9 | 8 |
| sandbox pay page GET | 1 | 1 | 1 | 1 | 1 |
| sandbox pay page POST (pay) | 5 | 2 | 2 | 2 | 2 |
| notify of a card-code order | 18 | 12 | 10 | 7 | 7 |
| notify of a top-up order | 15 | 13 | 12 | 11 | 11 |
| notify of a bundle (card code + top-up) | 18 | 16 | 15 | 12 | 12 |
| the same notify again (the gateway's retry) | 6 | 6 | 6 | 6 | 6 |

Session 4 (docs/PERFORMANCE.md, "Paid path, session 4"): on PostgreSQL the
order, its line, its event and the code reservation are one statement; the
sandbox trade is opened in one; the order's move, its events and the email row
are one; the email's `queued_at` is written by the worker.

Session 5b (docs/PERFORMANCE.md, "Paid path, session 5b"): the notify's code
sale is one statement with its read of the lines, the lines' move one with the
order's; an order that is not `partnered` (no attribution, no partner order) is
not looked up by distribution's receivers; the checkout's risk evaluation is
one INSERT, linked to its order, once the order is made.

Session 7 (docs/PERFORMANCE.md, "Paid path, session 7: the checkout POST"): the
checkout's risk evaluation is an INSERT of the order's own statement (a CTE
linked to the new order), no longer a statement after the commit.

Session 7 (docs/PERFORMANCE.md, "Paid path, session 7: the notify's statements"):
the notify's payment row, its paid outcome, the code sale and the read of the
lines are written by the statement that locks the order (when the row locked is
the version that statement's snapshot holds; otherwise the sale and the read
follow the lock, as before): notifies 7 → 5 (card code), 11 → 9 (top-up),
12 → 10 (bundle), a repeated notify 6 → 5.

The checkout POST here reads the session from the cache (cached_db) but the SKU
from the database: each test starts with an empty cache, where a running shop
has it cached (catalog/cache.py).

Issue 7 (risk): the checkout POST records its risk evaluation (one INSERT, with
the order it made: risk_checkout_confirm; session 4 linked it by an UPDATE). The active
rules are read once per process and rule change (risk/cache.py): warm here, as
in a running shop. With no paid-stage rule active the notify asks nothing more.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import Sku
from fulfillment.models import CardCode, TopUp
from orders.models import Order, OrderEvent, OrderLine, Payment, SandboxTrade
from orders.services import order_place
from risk.cache import risk_snapshot
from tests.conftest import signed_notify
from tests.factories.catalog import (
    BundleItemFactory,
    SkuFactory,
)
from tests.factories.fulfillment import (
    qq_topup_on_sale,
    stock_codes,
)

pytestmark = pytest.mark.django_db

CHECKOUT_POST_MAX_QUERIES = 8  # the risk evaluation in the order's statement
PAY_PAGE_GET_MAX_QUERIES = 1
PAY_PAGE_POST_MAX_QUERIES = 2
NOTIFY_CARD_CODE_MAX_QUERIES = 5
NOTIFY_TOPUP_MAX_QUERIES = 9
NOTIFY_BUNDLE_MAX_QUERIES = 10
NOTIFY_REPEATED_MAX_QUERIES = 5

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture(autouse=True)
def _risk_rules_cached(db):
    """The rules snapshot a running process holds (rebuilt only when rules change)."""
    risk_snapshot()


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 5)
    return sku


@pytest.fixture
def topup_sku():
    return qq_topup_on_sale()


@pytest.fixture
def bundle(sku, topup_sku):
    bundle = SkuFactory(
        code="BUNDLE-1", delivery=Sku.Delivery.BUNDLE, price=Decimal("45.00")
    )
    BundleItemFactory(bundle=bundle, component=sku, share=Decimal("2"))
    BundleItemFactory(bundle=bundle, component=topup_sku, share=Decimal("1"))
    return bundle


def _checkout(client, sku_code="TX-VIP-MONTH"):
    return client.post(
        reverse("orders:checkout"), {"sku": sku_code, "quantity": 1, "token": "t"}
    )


def test_checkout_post_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries
):
    alice_client.get("/")  # the session exists already, as for a real shopper

    with django_assert_max_num_queries(CHECKOUT_POST_MAX_QUERIES):
        response = alice_client.post(
            reverse("orders:checkout"),
            {"sku": "TX-VIP-MONTH", "quantity": 2, "token": "t-1"},
        )

    assert response.status_code == 302
    assert Order.objects.get().lines.get().codes.count() == 2
    trade = SandboxTrade.objects.get()
    assert response["Location"] == reverse("orders:sandbox-pay", args=[trade.token])
    assert trade.subject.endswith("× 2")


def test_pay_page_get_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries
):
    pay_url = _checkout(alice_client)["Location"]

    with django_assert_max_num_queries(PAY_PAGE_GET_MAX_QUERIES):
        response = Client().get(pay_url)

    assert response.status_code == 200
    assert Order.objects.get().number in response.content.decode()


def test_pay_page_post_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    pay_url = _checkout(alice_client)["Location"]

    with (
        django_assert_max_num_queries(PAY_PAGE_POST_MAX_QUERIES),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        response = Client().post(pay_url, {"action": "pay"})

    assert response.status_code == 302
    assert SandboxTrade.objects.get().status == SandboxTrade.Status.PAID
    assert len(callbacks) == 1  # the signed notify, sent after commit


def test_notify_of_a_card_code_order_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries
):
    _checkout(alice_client)
    order = Order.objects.get()

    with django_assert_max_num_queries(NOTIFY_CARD_CODE_MAX_QUERIES):
        response = Client().post(NOTIFY_URL, signed_notify(order))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.paid_amount == order.total_amount
    assert list(order.events.values_list("kind", flat=True)) == [
        OrderEvent.Kind.PLACED,
        OrderEvent.Kind.PAID,
        OrderEvent.Kind.DELIVERED,
    ]
    assert order.emails.count() == 1


def test_notify_of_a_topup_order_stays_within_its_query_budget(
    alice, topup_sku, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )

    with (
        django_assert_max_num_queries(NOTIFY_TOPUP_MAX_QUERIES),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        response = Client().post(NOTIFY_URL, signed_notify(order))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLING
    assert order.paid_at is not None
    assert TopUp.objects.get().order_line.status == OrderLine.Status.DELIVERING
    # After commit: the top-up's first step, and the order-status signal
    # (partners' webhooks listen to it).
    assert len(callbacks) == 2


def test_notify_of_a_bundle_order_stays_within_its_query_budget(
    alice, bundle, django_assert_max_num_queries
):
    order = order_place(
        user=alice, sku_code="BUNDLE-1", quantity=1, recharge_account="12345678"
    )

    with django_assert_max_num_queries(NOTIFY_BUNDLE_MAX_QUERIES):
        response = Client().post(NOTIFY_URL, signed_notify(order))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLING
    card = order.lines.get(delivery=Sku.Delivery.CARD_CODE)
    assert card.status == OrderLine.Status.DELIVERED
    assert CardCode.objects.get(order_line=card).status == CardCode.Status.SOLD
    assert TopUp.objects.count() == 1


def test_a_repeated_notify_stays_within_its_query_budget_and_changes_nothing(
    alice_client, sku, django_assert_max_num_queries
):
    _checkout(alice_client)
    order = Order.objects.get()
    fields = signed_notify(order)
    Client().post(NOTIFY_URL, fields)
    events = order.events.count()

    with django_assert_max_num_queries(NOTIFY_REPEATED_MAX_QUERIES):
        response = Client().post(NOTIFY_URL, fields)

    assert response.content == b"success"
    assert Payment.objects.count() == 1
    assert order.events.count() == events
    assert order.notifies.order_by("id").last().outcome == "duplicate"


# --- Redis round trips (paid path, session 5) ----------------------------------
# With the catalog, the session and the rules warm, as in a running shop. The
# checkout POST: the session, the view's sold-out answer (the catalog version, then
# the flag and this click's order in one MGET), the catalog version again for the
# engine and the order (what this click placed is written after commit, which a
# test never reaches). Before session 5: 8 (the catalog version and the sold-out
# MGET again in order_place, and the device's captcha pass with no captcha rule
# active); before session 6: 5 (the rules' version, now read once a second per
# process: risk/cache.py VERSION_TRUST_SECONDS). Session 7: 2, the session and
# the catalog version in one MGET, the flag and this click's order in the other;
# the whole request uses the version read with the session (orders/views.py
# checkout), where the engine and the order asked for it again.
CHECKOUT_POST_MAX_REDIS_ROUND_TRIPS = 2


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Commands sent to Redis one by one, plus pipelines (one round trip each)."""
    import redis

    sent: list[str] = []
    command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(self, *args, **options):
        sent.append(str(args[0]))
        return command(self, *args, **options)

    def counted_pipeline(self, *args, **kwargs):
        sent.append("pipeline")
        return pipeline(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_pipeline)
    return sent


def test_checkout_post_stays_within_its_redis_budget(
    settings, alice_client, sku, redis_round_trips, monkeypatch
):
    assert settings.CACHES["default"]["BACKEND"] == "config.lib.cache.RedisCache"
    # The two checkouts within the second the rules' version is trusted, however
    # slow the machine.
    monkeypatch.setattr("risk.cache._clock", lambda: 1000.0)
    _checkout(alice_client)  # the catalog, the session and the rules cached
    redis_round_trips.clear()

    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t2"},
    )

    assert response.status_code == 302
    assert Order.objects.count() == 2
    assert len(redis_round_trips) <= CHECKOUT_POST_MAX_REDIS_ROUND_TRIPS, (
        redis_round_trips
    )
