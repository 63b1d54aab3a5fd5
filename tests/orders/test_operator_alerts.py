"""Operator alerts: low stock once a day per SKU, daily digests of what waits on a human."""

from __future__ import annotations

import contextlib
import datetime as dt
import re

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from catalog.models import Sku
from orders.locks import order_lock_for_update_by_id
from orders.models import (
    OperatorAlert,
    OperatorAlertEmail,
    Order,
    Payment,
    ProblemReport,
    Refund,
    SandboxTrade,
)
from orders.services import order_mark_paid, order_place, order_review_approve
from orders.services.aftersales import order_refund_by_operator
from orders.services.operator_alerts import (
    MAX_ATTEMPTS,
    operator_alert_flush,
    operator_alerts_check,
)
from orders.services.problems import problem_report_open
from orders.tasks import operator_alerts_check_task
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes, topup_make
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db

SITE = "http://127.0.0.1:8765"
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture(autouse=True)
def _alert_settings(settings):
    settings.SITE_URL = SITE
    settings.LANGUAGE_CODE = "zh-hans"
    settings.OPERATOR_DIGEST_HOUR = 9
    settings.OPERATOR_ALERT_EMAILS = []
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def at(hour: int, *, days: int = 0) -> dt.datetime:
    """Today (local time) at `hour`:05, `days` later."""
    today = timezone.localtime().replace(hour=hour, minute=5, second=0, microsecond=0)
    return today + dt.timedelta(days=days)


def check(now: dt.datetime, capture) -> int:
    with capture(execute=True):
        return operator_alerts_check(now=now)


def alerts_to(address: str) -> list:
    return [m for m in mail.outbox if address in m.to]


def low_sku(code: str, *, codes: int, threshold: int = 10, **fields) -> Sku:
    sku = SkuFactory(code=code, low_stock_threshold=threshold, **fields)
    if codes:
        stock_codes(sku, codes)
    return sku


# --- Low stock -------------------------------------------------------------------


def test_low_stock_alert_goes_to_operators_once_a_day_per_sku(
    operator, django_capture_on_commit_callbacks
):
    sku = low_sku("TX-LOW", codes=3)

    first = check(at(10), django_capture_on_commit_callbacks)
    rerun = check(at(10) + dt.timedelta(minutes=10), django_capture_on_commit_callbacks)

    assert (first, rerun) == (1, 0)
    (message,) = alerts_to(operator.email)
    assert message.subject == "【卡券】低库存提醒：1 个 SKU"
    assert "TX-LOW" in message.body
    assert "可售 3，阈值 10" in message.body
    assert f"{SITE}/admin/catalog/sku/{sku.id}/change/" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{SITE}/admin/catalog/sku/{sku.id}/change/"' in html
    email = OperatorAlertEmail.objects.get()
    assert (email.status, email.attempts, email.to) == ("sent", 1, [operator.email])


def test_low_stock_alert_sent_again_the_next_day_while_still_low(
    operator, django_capture_on_commit_callbacks
):
    low_sku("TX-LOW", codes=3)
    check(at(10), django_capture_on_commit_callbacks)
    mail.outbox.clear()

    sent = check(at(0, days=1), django_capture_on_commit_callbacks)

    assert sent == 1
    (message,) = alerts_to(operator.email)
    assert "TX-LOW" in message.body
    assert OperatorAlert.objects.filter(sku__code="TX-LOW").count() == 2


def test_restocked_sku_sends_nothing_the_next_day(
    operator, django_capture_on_commit_callbacks
):
    sku = low_sku("TX-LOW", codes=3)
    check(at(10), django_capture_on_commit_callbacks)
    mail.outbox.clear()

    stock_codes(sku, 20)
    sent = check(at(10, days=1), django_capture_on_commit_callbacks)

    assert sent == 0
    assert alerts_to(operator.email) == []


@pytest.mark.parametrize(
    ("codes", "fields"),
    [
        (10, {}),  # at the threshold is not below it
        (0, {"is_active": False}),  # not on sale
        (0, {"threshold": 0}),  # alerts off for this SKU
        (0, {"delivery": Sku.Delivery.DIRECT_TOPUP}),  # no codes to run out of
    ],
)
def test_no_low_stock_alert_for_skus_not_running_low(
    operator, codes, fields, django_capture_on_commit_callbacks
):
    low_sku("TX-OK", codes=codes, **fields)

    assert check(at(10), django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []
    assert not OperatorAlert.objects.exists()


def test_sold_out_sku_is_alerted_and_a_sku_low_later_that_day_gets_its_own_digest(
    operator, django_capture_on_commit_callbacks
):
    low_sku("TX-GONE", codes=0)
    later = low_sku("TX-LATER", codes=12)
    check(at(10), django_capture_on_commit_callbacks)
    Sku.objects.filter(pk=later.pk).update(low_stock_threshold=15)  # operator raises it
    mail.outbox.clear()

    sent = check(at(15), django_capture_on_commit_callbacks)

    assert sent == 1
    (message,) = alerts_to(operator.email)
    assert "TX-LATER" in message.body
    assert "可售 12，阈值 15" in message.body
    assert "TX-GONE" not in message.body  # alerted this morning already


def test_alerts_go_to_configured_addresses_instead_of_the_group(
    operator, settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_ALERT_EMAILS = ["ops@example.com", "boss@example.com"]
    low_sku("TX-LOW", codes=1)

    check(at(10), django_capture_on_commit_callbacks)

    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "boss@example.com"]


def test_nothing_is_written_without_recipients_so_the_alert_is_not_lost(
    staff, settings, django_capture_on_commit_callbacks
):
    low_sku("TX-LOW", codes=1)  # `staff` is not an Operator

    assert check(at(10), django_capture_on_commit_callbacks) == 0
    assert not OperatorAlert.objects.exists()

    settings.OPERATOR_ALERT_EMAILS = ["ops@example.com"]
    assert check(at(11), django_capture_on_commit_callbacks) == 1
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]


# --- Orders waiting on a human ---------------------------------------------------


def _paid(client, user, sku: Sku, *, trade_no: str, capture) -> Order:
    order = order_place(user=user, sku_code=sku.code, quantity=1)
    sandbox_trade_paid(order, trade_no=trade_no)
    with capture(execute=True):
        client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
    return Order.objects.get(pk=order.pk)


def _held(user, sku: Sku) -> Order:
    """Paid, held by a risk rule (as test_review.py holds one)."""
    order = order_place(user=user, sku_code=sku.code, quantity=1)
    sandbox_trade_paid(order, trade_no=f"H{order.id}")
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order.id)
        payment = Payment.objects.create(
            order=order,
            gateway="sandbox",
            trade_no=f"H{order.id}",
            amount=order.total_amount,
        )
        order_mark_paid(order=order, payment=payment, hold_reason="new account")
    return order


@pytest.fixture
def waiting(client, alice, operator, django_capture_on_commit_callbacks):
    """One of each: two orders in review, a failed refund, an open report, a top-up."""
    capture = django_capture_on_commit_callbacks
    sku = low_sku("TX-VIP", codes=30)
    held = [_held(alice, sku), _held(alice, sku)]
    refunded = _paid(client, alice, sku, trade_no="T-REF", capture=capture)
    SandboxTrade.objects.filter(trade_no="T-REF").update(
        status=SandboxTrade.Status.CLOSED  # the gateway will refuse the refund
    )
    with capture(execute=True):
        refund = order_refund_by_operator(
            order_id=refunded.id, amounts=None, reason="x", actor=operator
        )
    reported = _paid(client, alice, sku, trade_no="T-REP", capture=capture)
    report = problem_report_open(
        order=reported,
        line_id=reported.lines.get().id,
        user=alice,
        kind=ProblemReport.Kind.CODE_INVALID,
        message="invalid",
    )
    topup_sku = SkuFactory(code="TX-DIRECT", delivery=Sku.Delivery.DIRECT_TOPUP)
    topup = topup_make(
        topup_sku, needs_attention=True, attention_note="supplier lost it"
    )
    mail.outbox.clear()
    return {"review": held, "refund": refund, "report": report, "topup": topup}


def _digest(address: str, kind_text: str):
    (message,) = [m for m in alerts_to(address) if kind_text in m.subject]
    return message


def test_review_digest_lists_the_orders_with_links_to_their_review_pages(
    operator, waiting, django_capture_on_commit_callbacks
):
    sent = check(at(10), django_capture_on_commit_callbacks)

    assert sent == 4
    message = _digest(operator.email, "待审核订单")
    assert message.subject == "【卡券】待审核订单：2 项待处理"
    for order in waiting["review"]:
        assert order.number in message.body
        url = f"{SITE}/admin/orders/order/{order.id}/review/"
        assert url in message.body
        assert f'href="{url}"' in message.alternatives[0][0]
    assert f"{SITE}/admin/orders/order/?review=waiting" in message.body


def test_each_waiting_digest_links_to_its_admin_page(
    operator, waiting, django_capture_on_commit_callbacks
):
    check(at(10), django_capture_on_commit_callbacks)

    refund = _digest(operator.email, "失败的退款")
    assert waiting["refund"].order.number in refund.body
    assert "退款 ¥25.00 失败" in refund.body
    assert f"{SITE}/admin/orders/refund/{waiting['refund'].id}/change/" in refund.body
    report = _digest(operator.email, "问题反馈")
    assert "卡密无效" in report.body
    assert (
        f"{SITE}/admin/orders/problemreport/{waiting['report'].id}/change/"
        in report.body
    )
    topup = _digest(operator.email, "直充")
    assert "TX-DIRECT" in topup.body
    assert "supplier lost it" in topup.body
    assert f"{SITE}/admin/fulfillment/topup/{waiting['topup'].id}/change/" in topup.body


def test_a_refund_the_gateway_accepted_but_never_settled_is_in_the_digest_after_a_day(
    operator, waiting, django_capture_on_commit_callbacks
):
    """WeChat answers a refund PROCESSING; one still waiting a day later needs a human."""
    refund = waiting["refund"]
    Refund.objects.filter(pk=refund.pk).update(
        status=Refund.Status.SUBMITTED, claimed_at=at(10) - dt.timedelta(hours=2)
    )
    check(at(10), django_capture_on_commit_callbacks)
    assert not [m for m in alerts_to(operator.email) if "失败的退款" in m.subject]

    Refund.objects.filter(pk=refund.pk).update(
        claimed_at=at(10, days=1) - dt.timedelta(hours=25)
    )
    check(at(10, days=1), django_capture_on_commit_callbacks)

    message = _digest(operator.email, "失败的退款")
    assert refund.order.number in message.body
    assert "退款 ¥25.00 于" in message.body
    assert "提交给支付渠道，至今未到账" in message.body
    assert f"{SITE}/admin/orders/refund/{refund.id}/change/" in message.body


def test_waiting_digests_go_out_once_a_day_from_the_digest_hour(
    operator, waiting, django_capture_on_commit_callbacks
):
    early = check(at(8), django_capture_on_commit_callbacks)
    on_time = check(at(9), django_capture_on_commit_callbacks)
    again = check(at(17), django_capture_on_commit_callbacks)
    tomorrow = check(at(9, days=1), django_capture_on_commit_callbacks)

    assert (early, on_time, again, tomorrow) == (0, 4, 0, 4)
    assert len(alerts_to(operator.email)) == 8


def test_nothing_waiting_sends_no_digest(operator, django_capture_on_commit_callbacks):
    assert check(at(10), django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []


# --- Failures --------------------------------------------------------------------


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionError("smtp down")


def _check_with_broken_mail(settings, capture) -> list[OperatorAlertEmail]:
    settings.EMAIL_BACKEND = "tests.orders.test_operator_alerts.BrokenBackend"
    with capture(execute=False) as callbacks:
        operator_alerts_check(now=at(10))
    for callback in callbacks:
        # Eager here; on a worker the task retries with backoff, long after the
        # check committed.
        with contextlib.suppress(Retry, ConnectionError):
            callback()
    return list(OperatorAlertEmail.objects.order_by("id"))


def test_failed_send_is_recorded_and_retried_until_sent(
    operator, settings, django_capture_on_commit_callbacks
):
    low_sku("TX-LOW", codes=1)
    (email,) = _check_with_broken_mail(settings, django_capture_on_commit_callbacks)

    assert email.status == "pending"
    assert email.attempts >= 1  # eager Celery may have retried once already
    assert email.last_error == "ConnectionError: smtp down"
    assert mail.outbox == []

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sent = operator_alert_flush(now=timezone.now() + dt.timedelta(minutes=2))

    assert sent == 1
    again = OperatorAlertEmail.objects.get()
    assert again.status == "sent"
    assert again.attempts == email.attempts + 1
    assert [m.to for m in mail.outbox] == [[operator.email]]
    assert operator_alert_flush(now=timezone.now() + dt.timedelta(minutes=2)) == 0
    assert len(mail.outbox) == 1


def test_send_that_keeps_failing_ends_failed_and_visible_in_admin(
    operator, operator_client, settings, django_capture_on_commit_callbacks
):
    low_sku("TX-LOW", codes=1)
    (email,) = _check_with_broken_mail(settings, django_capture_on_commit_callbacks)
    for _attempt in range(MAX_ATTEMPTS):
        operator_alert_flush(now=timezone.now() + dt.timedelta(minutes=2))

    email.refresh_from_db()
    assert (email.status, email.attempts) == ("failed", MAX_ATTEMPTS)
    page = operator_client.get(reverse("admin:orders_operatoralertemail_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "失败" in text
    assert "ConnectionError: smtp down" in text
    assert reverse("admin:orders_operatoralertemail_add") not in text
    detail = operator_client.get(
        reverse("admin:orders_operatoralertemail_change", args=[email.id])
    )
    assert "TX-LOW" in detail.content.decode()  # what would have been sent
    assert (
        operator_client.post(
            reverse("admin:orders_operatoralertemail_delete", args=[email.id]),
            {"post": "yes"},
        ).status_code
        == 403
    )
    assert OperatorAlertEmail.objects.filter(pk=email.pk).exists()


def test_a_mail_server_that_is_down_never_blocks_an_order(
    operator, alice, settings, django_capture_on_commit_callbacks
):
    sku = low_sku("TX-LOW", codes=2)
    held = _held(alice, sku)
    emails = _check_with_broken_mail(settings, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_review_approve(order_id=held.id, actor=operator)
    for callback in callbacks:  # the shopper's email fails too, on its own
        with contextlib.suppress(Retry, ConnectionError):
            callback()

    assert {(e.kind, e.status) for e in emails} == {
        ("low_stock", "pending"),
        ("review", "pending"),
    }
    held.refresh_from_db()
    assert held.status == Order.Status.DELIVERED
    assert held.lines.get().codes.count() == 1


def test_digest_content_never_holds_a_card_code(
    operator, waiting, django_capture_on_commit_callbacks
):
    check(at(10), django_capture_on_commit_callbacks)

    hints = [
        code.hint
        for order in waiting["review"]
        for code in order.lines.get().codes.all()
    ]
    bodies = " ".join(m.body + m.alternatives[0][0] for m in mail.outbox)
    assert hints
    assert not any(hint in bodies for hint in hints)
    assert not re.search(r"CODE[0-9A-F]{16}", bodies)


def test_alert_check_is_scheduled_on_beat():
    from config.celery import app as celery_app

    (entry,) = [
        e
        for e in celery_app.conf.beat_schedule.values()
        if e["task"] == "orders.tasks.operator_alerts_check_task"
    ]

    assert entry["task"] == operator_alerts_check_task.name
    assert entry["schedule"].is_due(timezone.now() - dt.timedelta(minutes=11))[0]
