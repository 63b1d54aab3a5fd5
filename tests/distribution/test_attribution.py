"""Referral links: the cookie, binding at signup, the downline, crediting orders.

bob, carol, dave (tests/distribution/conftest.py) are approved resellers;
alice is the shopper.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from accounts.models import User
from distribution.attribution import COOKIE_NAME, COOKIE_SALT, SESSION_BOUND
from distribution.models import CustomerBinding, OrderAttribution, Reseller
from distribution.services import reseller_apply, reseller_approve
from orders.models import Order
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.distribution import ResellerFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

CH = OrderAttribution.Channel
PASSWORD = "A-long-Passw0rd-2026"


@pytest.fixture
def product(db):
    product = ProductFactory(name="腾讯视频 VIP", slug="tx-vip")
    sku = SkuFactory(product=product, code="TX-M", name="月卡")
    stock_codes(sku, 5)
    return product


def checkout(client: Client, token: str = "t1"):  # noqa: S107 - a form token
    return client.post(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 1, "token": token}
    )


def ref_cookie(client: Client) -> str | None:
    morsel = client.cookies.get(COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


# --- the cookie --------------------------------------------------------------


def test_ref_link_sets_the_cookie_and_lands_on_the_page_without_ref(
    client, product, bob, settings
):
    settings.RESELLER_ATTRIBUTION_DAYS = 30

    response = client.get(f"/p/tx-vip/?sku=TX-M&ref={bob.referral_code.lower()}")

    assert response.status_code == 302
    assert response["Location"] == "/p/tx-vip/?sku=TX-M"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["max-age"] == 30 * 24 * 3600
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert bob.referral_code not in cookie.value.split(":")[1:]  # signed, not bare
    assert "private" in response["Cache-Control"]
    assert client.get(response["Location"]).status_code == 200


def test_ref_on_the_home_page_redirects_home(client, product, bob):
    response = client.get(f"/?ref={bob.referral_code}")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert COOKIE_NAME in response.cookies


@pytest.mark.parametrize("kind", ["unknown", "suspended", "applied", "malformed"])
def test_ref_link_with_a_code_that_earns_nothing_sets_no_cookie(
    client, product, tier, kind
):
    code = {
        "unknown": "ZZZZ9999",
        "suspended": ResellerFactory(status=Reseller.Status.SUSPENDED).referral_code,
        "applied": ResellerFactory(
            status=Reseller.Status.APPLIED, approved_at=None
        ).referral_code,
        "malformed": "<script>",
    }[kind]

    response = client.get("/p/tx-vip/", {"ref": code})

    assert response.status_code == 302
    assert response["Location"] == "/p/tx-vip/"
    assert COOKIE_NAME not in response.cookies


def test_a_bad_code_leaves_an_earlier_cookie_alone_and_a_good_one_replaces_it(
    client, product, bob, carol
):
    client.get(f"/?ref={bob.referral_code}")
    first = ref_cookie(client)

    client.get("/?ref=ZZZZ9999")
    assert ref_cookie(client) == first

    client.get(f"/?ref={carol.referral_code}")
    assert ref_cookie(client) != first


def test_ref_outside_the_storefront_is_left_alone(client, bob):
    response = client.get(f"/healthz?ref={bob.referral_code}")

    assert response.status_code == 200
    assert COOKIE_NAME not in response.cookies


def test_the_shared_page_cache_never_hands_one_visitors_cookie_to_another(
    client, product, bob
):
    landing = client.get(f"/p/tx-vip/?ref={bob.referral_code}", follow=True)
    other = Client().get("/p/tx-vip/")

    assert landing.status_code == other.status_code == 200
    assert COOKIE_NAME not in other.cookies
    assert bob.referral_code not in other.content.decode()
    assert bob.referral_code not in landing.content.decode()


# --- signup: binding and the downline ----------------------------------------


def signup(client: Client, email: str):
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_signing_up_through_a_ref_link_binds_the_shopper_to_the_reseller(
    client, product, bob
):
    client.get(f"/p/tx-vip/?ref={bob.referral_code}")

    signup(client, "new@example.com")

    user = User.objects.get(email="new@example.com")
    assert CustomerBinding.objects.get(user=user).reseller == bob


def test_signing_up_without_a_ref_link_binds_nobody(client, product, bob):
    signup(client, "new@example.com")

    assert User.objects.filter(email="new@example.com").exists()
    assert not CustomerBinding.objects.exists()


def test_signing_up_through_the_signup_link_itself_binds_too(client, bob):
    page = client.get(reverse("account_signup") + f"?ref={bob.referral_code}")
    assert page.status_code == 302

    signup(client, "new@example.com")

    assert CustomerBinding.objects.get().reseller == bob


def test_a_reseller_who_signed_up_through_anothers_link_becomes_their_downline(
    client, product, bob, staff
):
    client.get(f"/?ref={bob.referral_code}")
    signup(client, "erin@example.com")
    erin = User.objects.get(email="erin@example.com")

    application = reseller_apply(user=erin, note="我有渠道")
    approved = reseller_approve(reseller_id=application.pk, actor=staff)

    assert approved.parent == bob
    assert approved.depth == 2


def test_signing_up_under_a_third_level_reseller_stays_a_root_when_approved(
    client, product, dave, staff
):
    client.get(f"/?ref={dave.referral_code}")
    signup(client, "erin@example.com")
    erin = User.objects.get(email="erin@example.com")

    approved = reseller_approve(reseller_id=reseller_apply(user=erin).pk, actor=staff)

    assert approved.parent is None  # a fourth level is refused: no cycle, no depth 4
    assert approved.depth == 1


# --- crediting orders ----------------------------------------------------------


def test_an_order_placed_with_the_cookie_is_credited_to_its_reseller(
    client, alice, product, bob
):
    client.get(f"/?ref={bob.referral_code}")
    client.force_login(alice)

    assert checkout(client).status_code == 302

    attribution = OrderAttribution.objects.get(order=Order.objects.get())
    assert (attribution.reseller, attribution.channel) == (bob, CH.REFERRAL_LINK)


def test_a_bound_customer_is_credited_without_a_cookie(client, alice, product, bob):
    CustomerBinding.objects.create(user=alice, reseller=bob)
    client.force_login(alice)  # login remembers the binding in the session

    checkout(client)

    attribution = OrderAttribution.objects.get(order=Order.objects.get())
    assert (attribution.reseller, attribution.channel) == (bob, CH.BOUND_CUSTOMER)
    assert client.session[SESSION_BOUND] is True


def test_the_cookie_wins_over_the_binding(client, alice, product, bob, carol):
    CustomerBinding.objects.create(user=alice, reseller=bob)
    client.get(f"/?ref={carol.referral_code}")
    client.force_login(alice)

    checkout(client)

    assert OrderAttribution.objects.get().reseller == carol


def test_an_order_nobody_brought_is_credited_to_nobody(alice_client, product, bob):
    checkout(alice_client)

    assert Order.objects.count() == 1
    assert not OrderAttribution.objects.exists()
    assert SESSION_BOUND not in alice_client.session


def test_a_resellers_own_purchase_through_their_own_link_is_credited_to_nobody(
    client, product, bob
):
    client.get(f"/?ref={bob.referral_code}")
    client.force_login(bob.user)

    checkout(client)

    assert Order.objects.count() == 1
    assert not OrderAttribution.objects.exists()


def test_a_suspended_resellers_cookie_credits_nobody(client, alice, product, bob):
    client.get(f"/?ref={bob.referral_code}")
    Reseller.objects.filter(pk=bob.pk).update(status=Reseller.Status.SUSPENDED)
    client.force_login(alice)

    checkout(client)

    assert Order.objects.count() == 1
    assert not OrderAttribution.objects.exists()


def test_a_double_click_credits_the_order_once(client, alice, product, bob):
    client.get(f"/?ref={bob.referral_code}")
    client.force_login(alice)

    checkout(client, token="same")
    checkout(client, token="same")

    assert Order.objects.count() == 1
    assert OrderAttribution.objects.count() == 1


def aged_cookie(code: str, *, age: dt.timedelta) -> str:
    """The cookie the middleware would have set `age` ago (its signature carries the time)."""
    signer = signing.get_cookie_signer(salt=COOKIE_NAME + COOKIE_SALT)
    signer.timestamp = lambda: signing.b62_encode(
        int(time.time() - age.total_seconds())
    )
    return signer.sign(code)


@pytest.mark.parametrize(
    ("age", "credited"),
    [(dt.timedelta(days=1, hours=23), True), (dt.timedelta(days=2, minutes=1), False)],
    ids=["inside", "expired"],
)
def test_the_cookie_credits_orders_only_within_the_attribution_window(
    client, alice, product, bob, settings, age, credited
):
    settings.RESELLER_ATTRIBUTION_DAYS = 2
    # A browser that kept the cookie past its max-age: the signature's time decides.
    client.cookies[COOKIE_NAME] = aged_cookie(bob.referral_code, age=age)
    client.force_login(alice)

    checkout(client)

    assert Order.objects.count() == 1
    assert OrderAttribution.objects.exists() is credited


def test_a_tampered_cookie_credits_nobody(client, alice, product, bob):
    client.cookies[COOKIE_NAME] = bob.referral_code  # unsigned: made up
    client.force_login(alice)

    checkout(client)

    assert Order.objects.count() == 1
    assert not OrderAttribution.objects.exists()


def test_a_customer_bound_after_another_login_is_credited_from_the_next_login(
    alice, product, bob
):
    first = Client()
    first.force_login(alice)
    CustomerBinding.objects.create(user=alice, reseller=bob)
    second = Client()
    second.force_login(alice)

    checkout(second)

    assert OrderAttribution.objects.get().reseller == bob


def test_a_percent_encoded_ref_is_a_ref_link_too(client, product, bob):
    response = client.get(f"/?r%65f={bob.referral_code}")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert COOKIE_NAME in response.cookies


def test_a_query_string_without_ref_is_the_page_itself(client, product, bob):
    response = client.get("/p/tx-vip/?sku=TX-M&preference=1")

    assert response.status_code == 200
    assert COOKIE_NAME not in response.cookies
