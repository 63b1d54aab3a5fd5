"""The risk engine at checkout, through the storefront: block, captcha, allow."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from captcha.models import CaptchaStore
from django.test import Client
from django.urls import reverse

from fulfillment.models import CardCode
from orders.models import Order
from risk.checkout import ERR_BLOCKED
from risk.device import COOKIE_NAME, device_id_from_cookie
from risk.models import RiskEvaluation, RiskListEntry, RiskRule, Subject
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.factories.risk import RiskListEntryFactory, RiskRuleFactory
from tests.risk.conftest import purge_counters, redis_url, use_redis

pytestmark = pytest.mark.django_db

CHECKOUT = reverse("orders:checkout")
KEY = re.compile(r'name="captcha_0" value="([0-9a-f]{40})"')


@pytest.fixture(autouse=True)
def _redis_counters(settings):
    use_redis(settings)
    yield
    purge_counters(redis_url(settings))


@pytest.fixture
def card(db):
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"))
    stock_codes(sku, 10)
    return sku


def _shopper(name: str = "alice") -> Client:
    client = Client()
    client.force_login(UserFactory(username=name, email=f"{name}@example.com"))
    client.get("/")  # the device cookie, as on any first visit
    return client


def _buy(client: Client, token: str, **extra):
    return client.post(
        CHECKOUT, {"sku": "TX-M", "quantity": 1, "token": token, **extra}
    )


def _device(client: Client) -> str:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.COOKIES[COOKIE_NAME] = client.cookies[COOKIE_NAME].value
    device = device_id_from_cookie(request)
    assert device is not None
    return device


def _captcha_key(response) -> str:
    found = KEY.search(response.content.decode())
    assert found, "no captcha on the page"
    return found.group(1)


def _answer(key: str) -> str:
    return CaptchaStore.objects.get(hashkey=key).response


def _captcha_rule(**kwargs):
    # Every order of one unit or more: the captcha is asked on every checkout.
    return RiskRuleFactory(
        name="全员验证码",
        kind=RiskRule.Kind.ORDER_QUANTITY,
        subject="",
        window_seconds=None,
        threshold=0,
        action=RiskRule.ActionChoice.CAPTCHA,
        **kwargs,
    )


# --- allow ----------------------------------------------------------------------


def test_allowed_checkout_records_the_device_ip_and_its_evaluation(card):
    alice = _shopper()

    response = _buy(alice, "t1")

    assert response.status_code == 302
    order = Order.objects.get()
    assert order.device_id == _device(alice)
    assert order.ip_address == "127.0.0.1"
    evaluation = RiskEvaluation.objects.get()
    assert (evaluation.stage, evaluation.decision) == ("checkout", "allow")
    assert evaluation.order_id == order.id
    assert evaluation.device == order.device_id


def test_a_double_click_is_one_order_counted_once(card):
    RiskRuleFactory(name="设备频率", subject=Subject.DEVICE, threshold=2)
    alice = _shopper()

    first = _buy(alice, "t1")
    again = _buy(alice, "t1")  # the same click again: the same order
    second = _buy(alice, "t2")  # a second order: still within two per hour
    third = _buy(alice, "t3")  # a third: over the limit

    assert first.status_code == again.status_code == second.status_code == 302
    assert first["Location"] == again["Location"]
    assert third.status_code == 403
    assert Order.objects.count() == 2


def test_every_checkout_is_recorded_once_and_linked_only_to_the_order_it_made(card):
    alice = _shopper()

    _buy(alice, "t1")
    _buy(alice, "t1")  # a double click: the same order, not linked again

    order = Order.objects.get()
    assert list(
        RiskEvaluation.objects.order_by("pk").values_list("decision", "order_id")
    ) == [("allow", order.id), ("allow", None)]


def test_a_checkout_the_reservation_rolls_back_is_recorded_without_an_order(db):
    SkuFactory(code="TX-M", price=Decimal("25.00"))  # no codes, no sold-out flag yet
    alice = _shopper()

    response = _buy(alice, "t1")  # the order's statement runs, then rolls back

    assert response.status_code == 409
    assert not Order.objects.exists()
    assert list(RiskEvaluation.objects.values_list("decision", "order_id")) == [
        ("allow", None)
    ]


def test_a_double_click_past_the_limit_still_finds_its_order(card):
    RiskRuleFactory(name="设备频率", subject=Subject.DEVICE, threshold=1)
    alice = _shopper()
    first = _buy(alice, "t1")

    again = _buy(alice, "t1")  # assessed as a second order, but it is the first

    assert again.status_code == 302
    assert again["Location"] == first["Location"]
    assert Order.objects.count() == 1


def test_a_checkout_that_makes_no_order_does_not_count(card, settings):
    RiskRuleFactory(name="设备频率", subject=Subject.DEVICE, threshold=1)
    alice = _shopper()

    bad = alice.post(CHECKOUT, {"sku": "TX-M", "quantity": 9, "token": "t0"})
    good = _buy(alice, "t1")

    assert bad.status_code == 400  # more than the SKU allows: nothing made
    assert good.status_code == 302


# --- block ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "黑名单设备", "kind": "blocklist", "subject": "device"},
        {"name": "IP 频率", "kind": "velocity_orders", "subject": "ip", "threshold": 0},
    ],
    ids=["device-blocklist", "ip-velocity"],
)
def test_a_block_is_a_generic_403_and_nothing_is_created(card, rule):
    alice = _shopper()
    RiskRuleFactory(**{"window_seconds": 3600, **rule})
    RiskListEntryFactory(
        list_kind=RiskListEntry.ListKind.BLOCK,
        subject=Subject.DEVICE,
        value=_device(alice),
    )

    response = _buy(alice, "t1")

    page = response.content.decode()
    assert response.status_code == 403
    assert str(ERR_BLOCKED) in page
    assert 'role="alert"' in page
    assert rule["name"] not in page
    assert rule["kind"] not in page
    assert 'name="captcha_1"' not in page
    assert Order.objects.count() == 0
    assert CardCode.objects.filter(status=CardCode.Status.RESERVED).count() == 0
    assert available(card) == 10
    assert RiskEvaluation.objects.get().decision == "block"


def test_a_blocked_device_does_not_stop_another_shopper(card):
    mallory = _shopper("mallory")
    RiskRuleFactory(name="黑名单设备", kind="blocklist", subject="device")
    RiskListEntryFactory(subject=Subject.DEVICE, value=_device(mallory))

    assert _buy(mallory, "m1").status_code == 403
    assert _buy(_shopper("alice"), "a1").status_code == 302


def test_the_block_message_is_in_english_for_english_shoppers(card):
    alice = _shopper()
    RiskRuleFactory(name="黑名单设备", kind="blocklist", subject="device")
    RiskListEntryFactory(subject=Subject.DEVICE, value=_device(alice))

    response = alice.post(
        CHECKOUT,
        {"sku": "TX-M", "quantity": 1, "token": "t1"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 403
    assert "we cannot take this order right now" in response.content.decode()


# --- captcha --------------------------------------------------------------------


def test_a_captcha_rule_shows_a_labelled_image_captcha_and_creates_nothing(card):
    _captcha_rule()
    alice = _shopper()

    response = _buy(alice, "t1")

    page = response.content.decode()
    key = _captcha_key(response)
    assert response.status_code == 403
    assert '<label class="field-label" for="id_captcha_1">' in page
    assert 'id="id_captcha_1"' in page
    assert f"/captcha/image/{key}/" in page
    assert "全员验证码" not in page
    assert Order.objects.count() == 0
    image = alice.get(f"/captcha/image/{key}/")
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"


def test_the_right_answer_places_the_order_and_lets_the_device_through(card):
    _captcha_rule()
    alice = _shopper()
    key = _captcha_key(_buy(alice, "t1"))

    solved = _buy(alice, "t1", captcha_0=key, captcha_1=_answer(key).upper())
    later = _buy(alice, "t2")  # the same device, no captcha this time

    assert solved.status_code == 302
    assert later.status_code == 302
    assert Order.objects.count() == 2
    passed = RiskEvaluation.objects.filter(decision="allow").order_by("id")
    assert [e.inputs["captcha_passed"] for e in passed] == [True, True]


def test_the_pass_belongs_to_the_device_not_the_account(card):
    _captcha_rule()
    phone = _shopper()
    key = _captcha_key(_buy(phone, "t1"))
    assert _buy(phone, "t1", captcha_0=key, captcha_1=_answer(key)).status_code == 302

    laptop = Client()  # alice again, on another device
    laptop.force_login(Order.objects.get().user)
    response = _buy(laptop, "t2")

    assert response.status_code == 403
    assert _captcha_key(response)


def test_the_pass_lasts_the_configured_minutes(card, settings):
    settings.RISK_CAPTCHA_PASS_MINUTES = 0  # remembered for no time at all
    _captcha_rule()
    alice = _shopper()
    key = _captcha_key(_buy(alice, "t1"))
    assert _buy(alice, "t1", captcha_0=key, captcha_1=_answer(key)).status_code == 302

    assert _buy(alice, "t2").status_code == 403


def test_a_wrong_answer_is_an_error_at_the_captcha_with_a_new_image(card):
    _captcha_rule()
    alice = _shopper()
    key = _captcha_key(_buy(alice, "t1"))

    response = _buy(alice, "t1", captcha_0=key, captcha_1="WRONG")

    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="captcha-errors"' in page
    assert "验证码不正确" in page
    assert 'aria-invalid="true"' in page
    assert _captcha_key(response) != key
    assert Order.objects.count() == 0
    # One try per image: the right answer to the old one no longer works.
    assert not CaptchaStore.objects.filter(hashkey=key).exists()


def test_an_empty_or_replayed_answer_is_refused(card):
    _captcha_rule()
    alice = _shopper()
    key = _captcha_key(_buy(alice, "t1"))
    answer = _answer(key)

    empty = _buy(alice, "t1", captcha_0=key, captcha_1="")
    wrong = _buy(alice, "t1", captcha_0=key, captcha_1=answer + "x")
    replayed = _buy(alice, "t1", captcha_0=key, captcha_1=answer)  # after a try
    forged = _buy(alice, "t1", captcha_0="0" * 40, captcha_1="abcd")

    assert {r.status_code for r in (empty, wrong, replayed, forged)} == {400}
    assert "请输入图中的验证码" in empty.content.decode()
    assert "验证码不正确" in replayed.content.decode()
    assert Order.objects.count() == 0


def test_another_image_on_request_assesses_nothing(card):
    _captcha_rule()
    alice = _shopper()
    key = _captcha_key(_buy(alice, "t1"))

    response = _buy(alice, "t1", captcha_refresh="1")

    assert response.status_code == 403
    assert _captcha_key(response) != key
    assert RiskEvaluation.objects.count() == 1
    assert Order.objects.count() == 0


def test_solving_the_captcha_never_opens_a_block_behind_it(card):
    _captcha_rule(priority=1)
    alice = _shopper()
    RiskRuleFactory(name="黑名单设备", kind="blocklist", subject="device", priority=2)
    RiskListEntryFactory(subject=Subject.DEVICE, value=_device(alice))
    key = _captcha_key(_buy(alice, "t1"))

    response = _buy(alice, "t1", captcha_0=key, captcha_1=_answer(key))

    assert response.status_code == 403
    assert str(ERR_BLOCKED) in response.content.decode()
    assert Order.objects.count() == 0


def test_the_sold_out_answer_still_comes_first(card, django_assert_max_num_queries):
    RiskRuleFactory(name="设备频率", subject=Subject.DEVICE, threshold=50)
    sold = SkuFactory(code="GONE")
    stock_codes(sold, 1)
    assert (
        _shopper("bob")
        .post(CHECKOUT, {"sku": "GONE", "quantity": 1, "token": "b1"})
        .status_code
        == 302
    )
    alice = _shopper()
    alice.post(CHECKOUT, {"sku": "GONE", "quantity": 1, "token": "a0"})  # the flag
    evaluations = RiskEvaluation.objects.count()

    with django_assert_max_num_queries(0):
        response = alice.post(CHECKOUT, {"sku": "GONE", "quantity": 1, "token": "a1"})

    assert response.status_code == 409
    assert RiskEvaluation.objects.count() == evaluations  # not even assessed
