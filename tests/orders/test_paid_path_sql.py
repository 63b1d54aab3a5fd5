"""The paid path's hand-written SQL: exact reservations, the pay page's slots, the
one-statement writes (config/lib/db.py, fulfillment card_codes_reserve_sql)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.lib.db import insert_write, row_get, writes_run
from fulfillment.services import OutOfStockError, card_codes_reserve
from orders.models import Order, OrderEmail, OrderLine, PaymentNotify, SandboxTrade
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH", max_per_order=5)
    stock_codes(sku, 5)
    return sku


@pytest.mark.parametrize("quantity", [1, 2, 4])
def test_order_place_reserves_exactly_the_quantity_asked_when_more_are_free(
    alice, sku, quantity
):
    order = order_place(user=alice, sku_code=sku.code, quantity=quantity)

    line = order.lines.get()
    assert line.codes.count() == quantity
    assert set(line.codes.values_list("status", flat=True)) == {"reserved"}
    assert available(sku) == 5 - quantity
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING


def test_card_codes_reserve_takes_exactly_the_quantity_in_one_go(alice, sku):
    line = order_place(user=alice, sku_code=sku.code, quantity=1).lines.get()

    ids = card_codes_reserve(
        sku=sku, order_line_id=line.id, quantity=2, now=timezone.now()
    )

    assert len(ids) == 2
    assert line.codes.count() == 3
    assert available(sku) == 2


def test_card_codes_reserve_raises_and_the_rollback_frees_the_codes(alice, sku):
    line = order_place(user=alice, sku_code=sku.code, quantity=1).lines.get()

    with pytest.raises(OutOfStockError) as exc, transaction.atomic():
        card_codes_reserve(
            sku=sku, order_line_id=line.id, quantity=5, now=timezone.now()
        )

    assert exc.value.available == 4
    assert line.codes.count() == 1
    assert available(sku) == 4


def test_sandbox_pay_page_shows_each_trade_its_own_values_escaped(alice, sku):
    first = order_place(user=alice, sku_code=sku.code, quantity=1)
    second = order_place(user=alice, sku_code=sku.code, quantity=1)
    OrderLine.objects.filter(order=second).update(sku_name="<b>月卡</b>")
    pages = []
    for order in (first, second):
        client = Client()
        client.force_login(alice)
        response = client.post(
            reverse("orders:order-pay", args=[order.number]), follow=True
        )
        pages.append(response.content.decode())

    assert first.number in pages[0]
    assert second.number not in pages[0]
    assert second.number in pages[1]
    assert first.number not in pages[1]
    assert "&lt;b&gt;月卡&lt;/b&gt; × 1" in pages[1]
    assert "<b>" not in pages[1]
    assert 'name="csrfmiddlewaretoken"' in pages[1]
    trades = SandboxTrade.objects.order_by("id")
    assert [t.subject for t in trades] == ["月卡 × 1", "<b>月卡</b> × 1"]


def test_writes_run_answers_each_write_in_one_statement(
    alice, sku, django_assert_num_queries
):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    first = OrderEmail(order=order, kind=OrderEmail.Kind.DELIVERED, to="a@b.cn")
    again = OrderEmail(order=order, kind=OrderEmail.Kind.DELIVERED, to="a@b.cn")
    notify = PaymentNotify(gateway="sandbox", payload={"k": "v"}, out_trade_no="X")

    with django_assert_num_queries(1):
        answers = writes_run([insert_write([first], once=True), insert_write([notify])])
    with django_assert_num_queries(1):
        repeated = writes_run([insert_write([again], once=True)])

    assert answers[0] == OrderEmail.objects.get().pk
    assert repeated == [None]  # the unique (order, kind) key answered
    stored = row_get(PaymentNotify, pk=answers[1])
    assert stored is not None
    assert stored.payload == {"k": "v"}


def test_a_paid_storefront_order_sells_only_its_codes_and_asks_no_partner_table(
    alice, sku
):
    order = order_place(user=alice, sku_code=sku.code, quantity=2)
    other = order_place(user=alice, sku_code=sku.code, quantity=1)

    with CaptureQueriesContext(connection) as queries:
        response = Client().post(
            reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
        )

    assert response.content == b"success"
    order.refresh_from_db()
    line = order.lines.get()
    assert (order.status, line.status) == ("delivered", "delivered")
    assert line.delivered_at == order.delivered_at
    assert sorted(line.codes.values_list("status", flat=True)) == ["sold", "sold"]
    assert set(other.lines.get().codes.values_list("status", flat=True)) == {"reserved"}
    assert order.emails.count() == 1
    # Not a partner's order, credited to nobody: neither look-up runs.
    assert not [q for q in queries.captured_queries if "distribution_" in q["sql"]]
