"""The notify endpoint under abuse: bounded records, rate limits, hostile values,
the outcome committed with the payment, the sandbox's notify outbox, double clicks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from orders.gateways import ParsedNotify, sandbox
from orders.gateways.sandbox import sandbox_notify_sweep
from orders.models import Order, Payment, PaymentNotify, SandboxTrade
from orders.services import (
    order_place,
    payment_notify_handle,
    payment_query_apply,
)
from orders.services import payments as payments_module
from orders.tasks import sandbox_notify_sweep_task
from tests.conftest import signed_notify
from tests.factories.accounts import UserFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.gateways.conftest import merchant_key, wechat  # noqa: F401

pytestmark = pytest.mark.django_db
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
WECHAT_NOTIFY_URL = reverse("orders:payment-notify", args=["wechat"])
Outcome = PaymentNotify.Outcome
URLENCODED = "application/x-www-form-urlencoded"


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)


def signed(**fields: str) -> dict[str, str]:
    """Sandbox notify fields exactly as given, signed with the sandbox secret."""
    fields = {"notify_id": "N1", "trade_status": sandbox.TRADE_SUCCESS, **fields}
    fields["sign"] = sandbox.sign(fields, django_settings.SANDBOX_PAY_SECRET)
    return fields


def post(fields, *, ip="203.0.113.7"):
    """POST form fields urlencoded, as gateways send them."""
    return Client(REMOTE_ADDR=ip).post(
        NOTIFY_URL, urlencode(fields), content_type=URLENCODED
    )


def only_notify() -> PaymentNotify:
    return PaymentNotify.objects.get()


# --- Bounded records ---------------------------------------------------------


def test_huge_notify_is_recorded_bounded_with_the_digest_of_its_body(order):
    fields = {
        **signed_notify(order),
        "padding": "x" * 1_500_000,
        **{f"extra{i}": "甲" * 3000 for i in range(40)},
    }

    response = post(fields)

    # Fields outside the signature do not matter to the sandbox: it pays.
    assert (response.status_code, response.content) == (200, b"success")
    notify = only_notify()
    assert notify.outcome == Outcome.PAID
    stored = json.dumps(notify.payload, ensure_ascii=False).encode()
    assert len(stored) <= 17 * 1024
    assert notify.payload["out_trade_no"] == order.number
    assert notify.payload["padding"].startswith("x" * 100)
    assert notify.payload["padding"].endswith("chars]")
    assert notify.payload["_omitted"].endswith("fields")
    assert notify.body_sha256 == hashlib.sha256(response.wsgi_request.body).hexdigest()


def test_ordinary_notify_is_stored_whole_and_pays(order):
    fields = signed_notify(order)

    response = post(fields)

    assert response.content == b"success"
    notify = only_notify()
    assert notify.payload == fields
    assert notify.outcome == Outcome.PAID
    assert len(notify.body_sha256) == 64
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


# --- Rate limit ----------------------------------------------------------------


def test_notifies_over_the_limit_per_source_get_429_and_are_not_recorded(
    settings, order
):
    settings.PAYMENT_NOTIFY_RATE_LIMIT = 3
    forged = {**signed_notify(order), "sign": "0" * 64}

    answers = [post(forged).status_code for _ in range(5)]
    other_source = post(signed_notify(order), ip="198.51.100.9")

    assert answers == [400, 400, 400, 429, 429]
    assert PaymentNotify.objects.filter(remote_addr="203.0.113.7").count() == 3
    assert other_source.content == b"success"
    limited = post(forged)
    assert (limited.status_code, limited.content) == (429, b"fail")
    assert limited["Content-Type"].startswith("text/plain")


def test_rate_limited_wechat_notify_is_answered_in_wechat_json(
    client,
    settings,
    wechat,  # noqa: F811
):
    settings.PAYMENT_NOTIFY_RATE_LIMIT = 1

    first = client.post(WECHAT_NOTIFY_URL, data=b"{}", content_type="application/json")
    second = client.post(WECHAT_NOTIFY_URL, data=b"{}", content_type="application/json")

    assert first.status_code == 400
    assert second.status_code == 429
    assert second.json()["code"] == "FAIL"
    assert PaymentNotify.objects.count() == 1


def test_notify_is_taken_while_the_rate_limit_cache_is_down(settings, order, caplog):
    settings.PAYMENT_NOTIFY_RATE_LIMIT = 1
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "config.lib.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }

    with caplog.at_level(logging.WARNING, logger="orders.services.notify_intake"):
        first = post({**signed_notify(order), "sign": "0" * 64})
        second = post(signed_notify(order))

    assert (first.status_code, second.content) == (400, b"success")
    assert "cache unavailable" in caplog.text


# --- Hostile values --------------------------------------------------------------


def test_nul_byte_is_a_recorded_rejection_never_a_500(order):
    fields = signed_notify(order)
    fields["out_trade_no"] = order.number + "\x00"
    fields["evil\x00key"] = "a\x00b"

    result = payment_notify_handle(gateway_name="sandbox", fields=fields)

    assert not result.accepted
    notify = only_notify()
    assert notify.outcome == Outcome.INVALID
    assert "NUL" in notify.message
    assert notify.out_trade_no == order.number + "\\u0000"
    assert notify.payload["evil\\u0000key"] == "a\\u0000b"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_nul_byte_in_a_form_notify_over_http_is_answered_400_and_recorded(order):
    fields = signed_notify(order)
    fields["trade_no"] = "T\x001"

    response = post(fields)

    assert (response.status_code, response.content) == (400, b"fail")
    assert only_notify().outcome in (Outcome.INVALID, Outcome.BAD_SIGNATURE)
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b'{"id": "EV-\x00", "resource": {}}', b'{"id": "\\ud800"}'],
    ids=["raw-nul", "lone-surrogate"],
)
def test_unstorable_characters_in_a_json_notify_are_a_recorded_rejection(
    client,
    wechat,  # noqa: F811
    body,
):
    response = client.post(
        WECHAT_NOTIFY_URL, data=body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "FAIL"
    notify = only_notify()
    assert notify.outcome == Outcome.INVALID
    assert notify.message.startswith(("NUL byte", "invalid character"))


@pytest.mark.parametrize(
    "field",
    ["out_trade_no", "trade_no", "notify_id"],
)
def test_value_longer_than_its_column_is_a_recorded_rejection(order, field):
    fields = signed(out_trade_no=order.number, trade_no="T1", total_amount="25.00") | {
        field: "9" * 65
    }
    fields["sign"] = sandbox.sign(fields, django_settings.SANDBOX_PAY_SECRET)

    response = post(fields)

    assert (response.status_code, response.content) == (400, b"fail")
    notify = only_notify()
    assert notify.outcome == Outcome.INVALID
    assert f"{field} longer than 64" in notify.message
    assert len(getattr(notify, field)) == 64


def test_order_number_longer_than_ours_is_a_recorded_rejection(order):
    response = post(
        signed(
            out_trade_no=order.number + "X" * 30, trade_no="T1", total_amount="25.00"
        )
    )

    assert response.status_code == 400
    assert "out_trade_no longer than 20" in only_notify().message


@pytest.mark.parametrize(
    "amount",
    [
        "-25.00",
        "0.00",
        "1E+1",
        "2.5e1",
        "NaN",
        "sNaN",
        "Infinity",
        "25.001",
        "25.000",
        " 25.00",
        "1000000000.01",
        "99999999999.00",
    ],
)
def test_absurd_amount_is_a_recorded_rejection(order, amount):
    response = post(
        signed(out_trade_no=order.number, trade_no="T1", total_amount=amount)
    )

    assert (response.status_code, response.content) == (400, b"fail")
    notify = only_notify()
    assert notify.outcome == Outcome.INVALID
    assert "amount" in notify.message
    assert not Payment.objects.exists()


def test_sign_with_non_ascii_characters_is_a_bad_signature_not_a_500(order):
    response = post({**signed_notify(order), "sign": "签名" * 32})

    assert response.status_code == 400
    assert only_notify().outcome == Outcome.BAD_SIGNATURE


def test_trade_status_other_than_success_never_pays(order):
    waiting = ParsedNotify(
        out_trade_no=order.number,
        trade_no="T-WAIT",
        amount=order.total_amount,
        status="waiting",
        notify_id="",
    )

    result = payment_query_apply(gateway_name="sandbox", parsed=waiting)

    assert (result.accepted, result.outcome) == (False, Outcome.INVALID)
    assert "not final" in only_notify().message
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not Payment.objects.exists()


# --- The outcome commits with the payment ------------------------------------------


class WorkerKilled(BaseException):
    """The worker process dies: nothing after this point runs."""


def _die() -> None:
    raise WorkerKilled


@pytest.mark.django_db(transaction=True)
def test_outcome_is_committed_with_the_payment_when_the_worker_dies_after_commit(
    order, monkeypatch
):
    real_mark_paid = payments_module.order_mark_paid

    def mark_paid_then_die_after_commit(**kwargs):
        real_mark_paid(**kwargs)
        transaction.on_commit(_die)  # runs right after the COMMIT

    monkeypatch.setattr(
        payments_module, "order_mark_paid", mark_paid_then_die_after_commit
    )

    with pytest.raises(WorkerKilled):
        payment_notify_handle(gateway_name="sandbox", fields=signed_notify(order))

    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    notify = only_notify()
    assert (notify.outcome, notify.order_id) == (Outcome.PAID, order.pk)


@pytest.mark.django_db(transaction=True)
def test_outcome_is_rolled_back_with_a_failed_apply(order, monkeypatch):
    def mark_paid_fails(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(payments_module, "order_mark_paid", mark_paid_fails)

    with pytest.raises(RuntimeError):
        payment_notify_handle(gateway_name="sandbox", fields=signed_notify(order))

    # Nothing was applied, so the notify still says only that it came.
    assert only_notify().outcome == Outcome.RECEIVED
    assert not Payment.objects.exists()


# --- The sandbox's notify outbox -------------------------------------------------


def _broker_at(url: str, *, eager: bool) -> None:
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def broker():
    """Switch the broker off and on again; back to the test default at the end."""

    class Broker:
        def down(self) -> None:
            _broker_at("redis://127.0.0.1:1/0", eager=False)

        def up(self) -> None:
            _broker_at(django_settings.CELERY_BROKER_URL, eager=False)
            celery_app.control.purge()

    yield Broker()
    _broker_at(django_settings.CELERY_BROKER_URL, eager=True)


def _wait_for(predicate, seconds=20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def shop(live_server, settings, client, alice, sku):
    """Alice checked out with the sandbox; its notifies reach the live server."""
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    client.force_login(alice)
    client.post(
        reverse("orders:checkout"), {"sku": sku.code, "quantity": 1, "token": "t"}
    )
    return Order.objects.get(), SandboxTrade.objects.get()


@pytest.mark.django_db(transaction=True)
def test_pay_click_while_broker_is_down_is_delivered_by_the_sweep(client, shop, broker):
    from celery.contrib.testing.worker import start_worker

    order, trade = shop
    broker.down()

    response = client.post(
        reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"}
    )

    assert response.status_code == 302
    trade.refresh_from_db()
    order.refresh_from_db()
    assert (trade.status, trade.notify_status, trade.notified_at) == (
        SandboxTrade.Status.PAID,
        sandbox.TRADE_SUCCESS,
        None,
    )
    assert order.status == Order.Status.PENDING  # paid at the gateway, not here yet
    assert not PaymentNotify.objects.exists()

    # later: the broker is back and the sweep runs on a real worker
    broker.up()
    SandboxTrade.objects.filter(pk=trade.pk).update(
        updated_at=timezone.now() - timezone.timedelta(minutes=2)
    )
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10
    ):
        sandbox_notify_sweep_task.delay()
        assert _wait_for(
            lambda: Order.objects.get(pk=order.pk).status == Order.Status.DELIVERED
        )
        assert _wait_for(
            lambda: SandboxTrade.objects.get(pk=trade.pk).notified_at is not None
        )

    assert only_notify().outcome == Outcome.PAID
    assert sandbox_notify_sweep(now=timezone.now() + timezone.timedelta(hours=1)) == 0


@pytest.mark.django_db(transaction=True)
def test_sweep_resends_only_notifies_owed_and_not_acknowledged(client, shop):
    order, trade = shop
    later = timezone.now() + timezone.timedelta(minutes=5)
    # The shop closed this one itself: the sandbox owes no notify for it.
    closed_by_shop = SandboxTrade.objects.create(
        trade_no="SBX-CLOSED",
        out_trade_no="KQOTHER",
        subject="x",
        total_amount=Decimal("1.00"),
        notify_url=trade.notify_url,
        return_url=trade.return_url,
        status=SandboxTrade.Status.CLOSED,
    )

    client.post(reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"})

    trade.refresh_from_db()
    assert trade.notified_at is not None  # the task delivered it at once
    assert sandbox_notify_sweep(now=later) == 0
    SandboxTrade.objects.filter(pk=trade.pk).update(notified_at=None)
    assert sandbox_notify_sweep(now=timezone.now()) == 0  # its task may still be trying
    assert sandbox_notify_sweep(now=later) == 1
    assert sandbox_notify_sweep(now=later) == 0  # acknowledged this time
    assert PaymentNotify.objects.filter(outcome=Outcome.DUPLICATE).count() == 1
    closed_by_shop.refresh_from_db()
    assert closed_by_shop.notified_at is None
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


# --- Two clicks on "pay" at once ---------------------------------------------------


ROUNDS = 8
CLICKS = 4


@pytest.mark.django_db(transaction=True)
def test_parallel_pay_clicks_open_one_payable_trade(sku):
    assert connection.vendor == "postgresql"
    stock_codes(sku, ROUNDS)

    for _round in range(ROUNDS):
        shopper = UserFactory()
        order = order_place(user=shopper, sku_code=sku.code, quantity=1)
        barrier = threading.Barrier(CLICKS)
        locations: list[str | Exception] = [""] * CLICKS

        def click(
            index: int,
            number: str = order.number,
            who=shopper,
            barrier=barrier,
            locations=locations,
        ) -> None:
            try:
                client = Client()
                client.force_login(who)
                barrier.wait(timeout=10)
                # As the order page's form sends it (its gateway picker).
                response = client.post(
                    reverse("orders:order-pay", args=[number]), {"gateway": "sandbox"}
                )
                locations[index] = response["Location"]
            except Exception as exc:  # shown by the assertion below
                locations[index] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=click, args=(i,)) for i in range(CLICKS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert len(set(locations)) == 1, locations
        assert str(locations[0]).startswith("/pay/sandbox/")
        assert (
            SandboxTrade.objects.filter(
                out_trade_no=order.number, status=SandboxTrade.Status.WAITING
            ).count()
            == 1
        )


def test_accepted_notifies_never_count_against_their_source(settings, alice, sku):
    """A gateway sends every paid order's notify from a few hosts: a flash sale's
    hundreds a minute from one address are all taken."""
    settings.PAYMENT_NOTIFY_RATE_LIMIT = 2
    orders = [
        order_place(user=alice, sku_code=sku.code, quantity=1, client_token=f"t{i}")
        for i in range(3)
    ]

    answers = [post(signed_notify(placed)).content for placed in orders]
    answers += [post(signed_notify(placed)).content for placed in orders]  # repeats

    assert answers == [b"success"] * 6
