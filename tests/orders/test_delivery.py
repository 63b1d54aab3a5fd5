"""Paying delivers: every card line gets exactly its codes, in one paid-and-settled move."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from catalog.models import Sku
from fulfillment.models import CardCode
from orders.models import Order, OrderEvent, OrderLine
from orders.services import order_fulfil, order_place, payment_notify_handle
from tests.conftest import signed_notify
from tests.factories.catalog import BundleItemFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_cards():
    """A 50.00 bundle of one game card and two music cards."""
    game = SkuFactory(code="GAME-CARD", face_value=Decimal("30.00"))
    music = SkuFactory(code="MUSIC-CARD", face_value=Decimal("10.00"))
    stock_codes(game, 2)
    stock_codes(music, 4)
    bundle = SkuFactory(
        code="TWO-CARDS", delivery=Sku.Delivery.BUNDLE, price=Decimal("50.00")
    )
    BundleItemFactory(bundle=bundle, component=game, quantity=1)
    BundleItemFactory(bundle=bundle, component=music, quantity=2)
    return bundle


def _pay(order):
    return payment_notify_handle(gateway_name="sandbox", fields=signed_notify(order))


def _sold(line):
    return CardCode.objects.filter(order_line=line, status=CardCode.Status.SOLD).count()


def test_paying_a_bundle_sells_each_card_line_exactly_its_codes(alice, two_cards):
    order = order_place(user=alice, sku_code="TWO-CARDS", quantity=1)

    assert _pay(order).outcome == "paid"

    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.paid_at == order.delivered_at  # paid and delivered by the same notify
    game, music = order.lines.exclude(delivery=Sku.Delivery.BUNDLE).order_by("id")
    assert (_sold(game), _sold(music)) == (1, 2)
    assert set(order.lines.values_list("status", flat=True)) == {"delivered"}
    kinds = list(order.events.values_list("kind", flat=True))
    assert kinds == ["placed", "paid", "delivered"]


def test_paying_leaves_a_line_short_of_codes_for_an_operator(alice, two_cards, caplog):
    order = order_place(user=alice, sku_code="TWO-CARDS", quantity=1)
    music = order.lines.get(sku__code="MUSIC-CARD")
    # What the reservation constraints prevent: one of its codes went back.
    released = CardCode.objects.filter(order_line=music).first()
    CardCode.objects.filter(pk=released.pk).update(
        status=CardCode.Status.AVAILABLE, order_line=None
    )

    with caplog.at_level(logging.ERROR, logger="orders.services.delivery"):
        _pay(order)

    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLING
    assert order.lines.get(sku__code="GAME-CARD").status == "delivered"
    music.refresh_from_db()
    assert music.status == OrderLine.Status.RESERVED
    assert "has 1 of 2 codes" in caplog.text
    assert not order.emails.exists()


def test_order_fulfil_again_changes_nothing(alice, two_cards):
    order = order_place(user=alice, sku_code="TWO-CARDS", quantity=1)
    _pay(order)
    order.refresh_from_db()
    events = order.events.count()

    order_fulfil(order=order)

    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.events.count() == events
    assert not order.events.filter(kind=OrderEvent.Kind.FULFILLING).exists()
    assert CardCode.objects.filter(status=CardCode.Status.SOLD).count() == 3
