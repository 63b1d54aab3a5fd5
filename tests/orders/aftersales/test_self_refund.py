"""Instant self-service refund: unrevealed codes back to stock in one click, within the window."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from config.lib.errors import DomainError
from fulfillment.models import CardCode
from orders.models import Order, OrderLine, Refund, ReturnedCode, SandboxTrade
from orders.services import order_code_reveal, order_place
from orders.services.self_refund import SelfRefundError, line_self_refund
from tests.factories.fulfillment import available
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db


def refund_url(order):
    return reverse("orders:line-refund", args=[order.number, order.lines.get().id])


def page(client, order):
    return client.get(reverse("orders:order-detail", args=[order.number]))


def test_one_click_refunds_unrevealed_codes_and_the_page_says_so_at_once(
    alice_client, paid_order, sku, django_capture_on_commit_callbacks
):
    before = page(alice_client, paid_order).content.decode()
    assert "前一键退款；查看卡密后，该卡密不再支持自助退款" in before
    assert "退回 2 张未查看的卡密，退款 ¥50.00" in before

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(refund_url(paid_order), follow=True)

    assert response.status_code == 200
    text = response.content.decode()
    assert "已退回 2 张未查看的卡密，¥50.00 将原路退回您的支付账户。" in text
    assert "退回 2 张未查看的卡密" not in text.replace("已退回 2 张未查看的卡密", "")
    paid_order.refresh_from_db()
    line = paid_order.lines.get()
    assert paid_order.status == Order.Status.REFUNDED
    assert line.status == OrderLine.Status.REFUNDED
    refund = Refund.objects.get()
    assert (refund.actor_kind, refund.status) == ("shopper", Refund.Status.SUCCEEDED)
    assert SandboxTrade.objects.get(trade_no="T1").refunded_amount == Decimal("50.00")
    assert available(sku) == 5  # back on sale
    assert set(ReturnedCode.objects.values_list("outcome", "cause")) == {
        ("restocked", "self_refund")
    }


def test_revealing_a_code_ends_the_window_for_that_code_only(
    alice_client, alice, paid_order, django_capture_on_commit_callbacks
):
    seen, unseen = paid_order.lines.get().codes.order_by("id")
    order_code_reveal(order=paid_order, code_id=seen.id, user=alice)
    assert (
        "退回 1 张未查看的卡密，退款 ¥25.00"
        in page(alice_client, paid_order).content.decode()
    )

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(refund_url(paid_order))

    seen.refresh_from_db()
    unseen.refresh_from_db()
    line = paid_order.lines.get()
    paid_order.refresh_from_db()
    assert (seen.status, seen.order_line_id) == ("sold", line.id)
    assert (unseen.status, unseen.order_line_id) == ("available", None)
    assert (line.status, line.refunded_amount) == ("delivered", Decimal("25.00"))
    assert paid_order.status == Order.Status.PARTIALLY_REFUNDED
    # The revealed code stays with the shopper; no offer is left to click.
    assert "未查看的卡密，退款" not in page(alice_client, paid_order).content.decode()


def test_no_refund_once_every_code_is_revealed(alice, paid_order):
    for code in paid_order.lines.get().codes.all():
        order_code_reveal(order=paid_order, code_id=code.id, user=alice)

    with pytest.raises(SelfRefundError, match="卡密已查看，不能自助退款"):
        line_self_refund(
            order_id=paid_order.id, line_id=paid_order.lines.get().id, user=alice
        )

    assert not Refund.objects.exists()


def test_no_refund_after_the_window(alice, alice_client, paid_order):
    line = paid_order.lines.get()
    OrderLine.objects.filter(pk=line.pk).update(
        delivered_at=line.delivered_at - dt.timedelta(hours=24, seconds=1)
    )
    text = page(alice_client, paid_order).content.decode()
    assert "一键退款" not in text

    response = alice_client.post(refund_url(paid_order), follow=True)

    assert "已超过自助退款时限" in response.content.decode()
    assert not Refund.objects.exists()
    assert line.codes.filter(status="sold").count() == 2


def test_a_window_of_zero_turns_self_refund_off(alice, alice_client, paid_order, sku):
    sku.self_refund_hours = 0
    sku.save()
    assert "一键退款" not in page(alice_client, paid_order).content.decode()

    with pytest.raises(SelfRefundError, match="该商品不支持自助退款"):
        line_self_refund(
            order_id=paid_order.id, line_id=paid_order.lines.get().id, user=alice
        )


def test_a_longer_window_per_sku_is_honoured(alice, paid_order, sku):
    sku.self_refund_hours = 72
    sku.save()
    line = paid_order.lines.get()
    OrderLine.objects.filter(pk=line.pk).update(
        delivered_at=line.delivered_at - dt.timedelta(hours=48)
    )

    done = line_self_refund(order_id=paid_order.id, line_id=line.id, user=alice)

    assert (done.codes, done.amount) == (2, Decimal("50.00"))


def test_a_second_click_refunds_nothing_more(
    alice, alice_client, paid_order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(refund_url(paid_order))

    response = alice_client.post(refund_url(paid_order), follow=True)

    assert "该明细不支持自助退款" in response.content.decode()
    assert Refund.objects.count() == 1


def test_another_shopper_gets_404_and_nothing_changes(client, mallory, paid_order):
    client.force_login(mallory)

    response = client.post(refund_url(paid_order))

    assert response.status_code == 404
    assert not Refund.objects.exists()
    with pytest.raises(SelfRefundError):
        line_self_refund(
            order_id=paid_order.id, line_id=paid_order.lines.get().id, user=mallory
        )


def test_a_line_of_another_order_is_404(alice_client, alice, paid_order, sku):
    other = order_place(user=alice, sku_code=sku.code, quantity=1)
    url = reverse("orders:line-refund", args=[paid_order.number, other.lines.get().id])

    assert alice_client.post(url).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_refund_racing_a_reveal_exactly_one_wins(client, alice, sku):
    """Threads on PostgreSQL: the refund and the reveal of one code, many times over."""
    from orders.services.delivery import RevealError

    outcomes = []
    for round_no in range(6):
        order = order_place(user=alice, sku_code=sku.code, quantity=1)
        order = pay(client, order, trade_no=f"R{round_no}")
        line = order.lines.get()
        code = line.codes.get()
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def reveal(order=order, code=code, barrier=barrier, results=results):
            barrier.wait()
            try:
                results["reveal"] = order_code_reveal(
                    order=order, code_id=code.id, user=alice
                )
            except RevealError as exc:
                results["reveal"] = exc
            finally:
                connection.close()

        def refund(order=order, line=line, barrier=barrier, results=results):
            barrier.wait()
            try:
                results["refund"] = line_self_refund(
                    order_id=order.id, line_id=line.id, user=alice
                )
            except DomainError as exc:
                results["refund"] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=reveal), threading.Thread(target=refund)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        revealed = isinstance(results["reveal"], str)
        refunded = not isinstance(results["refund"], Exception)
        assert revealed != refunded, results  # exactly one wins
        code.refresh_from_db()
        if revealed:
            assert (code.status, code.order_line_id) == ("sold", line.id)
            assert "卡密已查看" in str(results["refund"])
        else:
            assert code.status == CardCode.Status.AVAILABLE
            assert ReturnedCode.objects.filter(code=code, was_revealed=False).exists()
        outcomes.append("reveal" if revealed else "refund")
    assert len(outcomes) == 6


def test_the_order_page_says_it_in_english_too(alice_client, paid_order, settings):
    alice_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    text = page(alice_client, paid_order).content.decode()

    assert "Unrevealed codes can be refunded in one click until" in text
    assert "Return 2 unrevealed codes, refund ¥50.00" in text
    assert "Something wrong? Tell our support team" in text
    assert "Buy again" in text
