"""Every email, text and HTML, in Chinese and in English, with links on SITE_URL.

Shopper emails (delivery, refund, problem-report answer) in the site's language
or the one the shopper used; operator digests in the site's language. English
must be English throughout: a missing msgstr shows up as Chinese text.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from catalog.models import Sku
from orders.models import OperatorAlertEmail, Order, ProblemReport, SandboxTrade
from orders.services import order_place
from orders.services.aftersales import order_refund_by_operator
from orders.services.operator_alerts import operator_alert_render, operator_alerts_check
from orders.services.problems import (
    problem_report_open,
    problem_report_refund,
    problem_report_replace,
    problem_report_reply,
)
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes, topup_make
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db

SITE = "http://127.0.0.1:8765"
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
# Han characters, CJK punctuation (【】、。) and full-width forms (：，￥).
CHINESE = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
LANGUAGES = ["zh-hans", "en"]


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OPERATOR_ALERT_EMAILS = ["ops@example.com"]
    settings.OPERATOR_DIGEST_HOUR = 0


@pytest.fixture
def sku(db):
    # ASCII names: in English, any Chinese left in an email is ours, not the data's.
    sku = SkuFactory(
        code="TX-VIP",
        name="Monthly",
        product__name="Tencent Video",
        max_per_order=5,
        low_stock_threshold=1,
    )
    stock_codes(sku, 12)
    return sku


@pytest.fixture
def delivered(client, alice, sku, django_capture_on_commit_callbacks):
    """Pay for `quantity` codes through the sandbox; the order is delivered."""

    def buy(quantity: int = 1, trade_no: str = "T1") -> Order:
        order = order_place(user=alice, sku_code=sku.code, quantity=quantity)
        sandbox_trade_paid(order, trade_no=trade_no)
        with django_capture_on_commit_callbacks(execute=True):
            client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
        return Order.objects.get(pk=order.pk)

    return buy


def assert_in_language(message, language: str, *phrases: str) -> str:
    """Text and HTML both carry `phrases`; English carries no Chinese at all."""
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'lang="{language}"' in html
    for phrase in phrases:
        assert phrase in message.subject + message.body, phrase
    if language == "en":
        for part in (message.subject, message.body, html):
            assert not CHINESE.findall(part), CHINESE.findall(part)
    else:
        assert CHINESE.search(message.body)
    return html


def assert_links_to(message, url: str) -> None:
    assert url.startswith(SITE)
    assert url in message.body
    assert f'href="{url}"' in message.alternatives[0][0]


# --- Shopper emails ------------------------------------------------------------

DELIVERED = {
    "zh-hans": ("已发货", "实付金额：¥25.00", "卡密一经查看不支持退换"),
    "en": ("has been delivered", "Amount paid: ¥25.00", "Monthly"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_delivery_email_in_each_language(language, settings, delivered):
    settings.LANGUAGE_CODE = language  # delivery emails use the site's language

    order = delivered()

    (message,) = mail.outbox
    assert order.number in message.subject
    assert_in_language(message, language, *DELIVERED[language])
    assert_links_to(message, f"{SITE}/orders/{order.number}/")


GUEST_DELIVERED = {
    "zh-hans": ("请打开下面的专属链接", "链接即凭证，请勿转发"),
    "en": ("Open the private link below", "do not forward it"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_guest_orders_delivery_email_links_with_its_access_token(
    language, settings, client, sku, django_capture_on_commit_callbacks
):
    from orders.guest import access_token

    settings.LANGUAGE_CODE = language
    order = order_place(
        user=None,
        sku_code=sku.code,
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )
    sandbox_trade_paid(order, trade_no="T1")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(NOTIFY_URL, signed_notify(order, trade_no="T1"))

    (message,) = mail.outbox
    assert message.to == ["guest@example.com"]
    assert_in_language(message, language, *GUEST_DELIVERED[language])
    assert_links_to(
        message, f"{SITE}/orders/{order.number}/?t={access_token(order.number)}"
    )


REFUNDED = {
    # (whole order, part of it)
    "zh-hans": (("已退款", "本次退款：¥25.00"), ("部分退款", "本次退款：¥10.00")),
    "en": (
        ("has been refunded", "This refund: ¥25.00"),
        ("partly refunded", "This refund: ¥10.00"),
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("part", [None, Decimal("10.00")])
def test_refund_email_in_each_language(
    language, part, operator, delivered, django_capture_on_commit_callbacks
):
    order = delivered()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        order_refund_by_operator(
            order_id=order.id,
            amounts=None if part is None else {order.lines.get().id: part},
            reason="wrong item",
            actor=operator,
            language=language,
        )

    (message,) = mail.outbox
    phrases = REFUNDED[language][0 if part is None else 1]
    assert_in_language(message, language, *phrases, "wrong item")
    assert_links_to(message, f"{SITE}/orders/{order.number}/")


ANSWERED = {
    "zh-hans": {
        "reply": "处理结果：客服已回复。",
        "replace": "处理结果：已为您更换卡密",
        "refund": "处理结果：已为您退款",
    },
    "en": {
        "reply": "Outcome: our support team has replied.",
        "replace": "Outcome: your code has been replaced",
        "refund": "Outcome: you have been refunded",
    },
}
ANSWERS = {
    "reply": problem_report_reply,
    "replace": problem_report_replace,
    "refund": problem_report_refund,
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_problem_answer_email_in_each_language(
    language, answer, alice, operator, delivered, django_capture_on_commit_callbacks
):
    order = delivered()
    report = problem_report_open(
        order=order,
        line_id=order.lines.get().id,
        user=alice,
        kind=ProblemReport.Kind.CODE_INVALID,
        message="does not work",
        language=language,
    )
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        ANSWERS[answer](report_id=report.id, actor=operator, reply="Sorry about that")

    message = next(m for m in mail.outbox if "Sorry about that" in m.body)
    assert_in_language(message, language, ANSWERED[language][answer])
    assert_links_to(message, f"{SITE}/orders/{order.number}/")


# --- Operator digests ------------------------------------------------------------

DIGESTS = {
    "zh-hans": {
        "low_stock": ("低库存提醒：1 个 SKU", "可售 3，阈值 10"),
        "review": ("待审核订单：1 项待处理", "付款"),
        "refund_failed": ("失败的退款：1 项待处理", "退款 ¥25.00 失败"),
        "problem_open": ("待处理的问题反馈：1 项待处理", "卡密无效"),
        "topup_attention": ("待人工处理的直充：1 项待处理", "TX-DIRECT"),
    },
    "en": {
        "low_stock": ("Low stock: 1 SKU", "3 available, threshold 10"),
        "review": ("Orders awaiting review: 1 waiting", "paid"),
        "refund_failed": ("Failed refunds: 1 waiting", "Refund of ¥25.00 failed"),
        "problem_open": ("Open problem reports: 1 waiting", "Code invalid"),
        "topup_attention": ("Top-ups needing attention: 1 waiting", "TX-DIRECT"),
    },
}
ADMIN_LISTS = {
    "low_stock": "/admin/catalog/sku/?delivery__exact=card_code",
    "review": "/admin/orders/order/?review=waiting",
    "refund_failed": "/admin/orders/refund/?status__exact=failed",
    "problem_open": "/admin/orders/problemreport/?status__exact=open",
    "topup_attention": "/admin/fulfillment/topup/?human=yes",
}


@pytest.fixture
def one_of_each(alice, operator, sku, delivered, django_capture_on_commit_callbacks):
    """A low SKU and one item waiting on a human of each kind."""
    low = SkuFactory(code="TX-LOW", name="Weekly", product__name="iQIYI")
    stock_codes(low, 3)
    held = order_place(user=alice, sku_code=sku.code, quantity=1)
    Order.objects.filter(pk=held.pk).update(
        status=Order.Status.REVIEW, paid_at=timezone.now(), paid_amount=Decimal(25)
    )
    refunded = delivered(trade_no="T-REF")
    SandboxTrade.objects.filter(trade_no="T-REF").update(status="closed")
    with django_capture_on_commit_callbacks(execute=True):
        order_refund_by_operator(
            order_id=refunded.id, amounts=None, reason="x", actor=operator
        )
    reported = delivered(trade_no="T-REP")
    problem_report_open(
        order=reported,
        line_id=reported.lines.get().id,
        user=alice,
        kind=ProblemReport.Kind.CODE_INVALID,
        message="x",
    )
    topup_sku = SkuFactory(
        code="TX-DIRECT", name="Direct", delivery=Sku.Delivery.DIRECT_TOPUP
    )
    topup_make(topup_sku, needs_attention=True, attention_note="call the supplier")
    mail.outbox.clear()


@pytest.mark.parametrize("language", LANGUAGES)
def test_operator_digests_in_each_language(
    language, settings, one_of_each, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = language

    with django_capture_on_commit_callbacks(execute=True):
        written = operator_alerts_check(now=timezone.now() + dt.timedelta(hours=1))

    assert written == 5
    for kind, (subject, detail) in DIGESTS[language].items():
        (message,) = [m for m in mail.outbox if subject in m.subject]
        assert message.to == ["ops@example.com"]
        assert_in_language(message, language, detail)
        assert_links_to(message, SITE + ADMIN_LISTS[kind])
        email = OperatorAlertEmail.objects.get(kind=kind)
        assert email.language == language


def test_a_digest_renders_in_its_own_language_whatever_the_site_says_now(
    settings, one_of_each, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    with django_capture_on_commit_callbacks(execute=True):
        operator_alerts_check(now=timezone.now() + dt.timedelta(hours=1))
    settings.LANGUAGE_CODE = "zh-hans"

    subject, text, html = operator_alert_render(
        OperatorAlertEmail.objects.get(kind="low_stock")
    )

    assert subject == "[Kaquan] Low stock: 1 SKU"
    assert not CHINESE.search(text + html)
