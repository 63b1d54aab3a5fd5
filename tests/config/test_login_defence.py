"""Login defences: throttles nobody can aim at a shopper, a Redis outage, ?next=."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import caches
from django.core.exceptions import NON_FIELD_ERRORS
from django.test import Client
from django.urls import reverse

from config.lib import ratelimitcache
from risk.device import COOKIE_NAME
from tests.factories.accounts import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
PROXY = "10.0.0.2"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _login(client, email, password, ip, **extra):
    return client.post(
        reverse("account_login"),
        {"login": email, "password": password},
        REMOTE_ADDR=ip,
        **extra,
    )


def _logged_in(client):
    return "_auth_user_id" in client.session


def _throttled(response):
    """allauth refuses before checking the password: a form error or a 429."""
    if response.status_code == 429:
        return True
    form = response.context and response.context.get("form")
    return bool(form) and form.has_error(NON_FIELD_ERRORS, "too_many_login_attempts")


def _fail(client, email, ip, times, **extra):
    responses = [_login(client, email, "wrong", ip, **extra) for _ in range(times)]
    assert all(r.status_code == 200 for r in responses)
    return responses


# --- Per account-and-address, not per account --------------------------------


def test_an_attacker_cannot_lock_the_owner_out(alice):
    attacker, owner = Client(), Client()
    _fail(attacker, "alice@example.com", ATTACKER, 5)

    blocked = _login(attacker, "alice@example.com", PASSWORD, ATTACKER)
    owner_response = _login(owner, "alice@example.com", PASSWORD, OWNER)

    assert _throttled(blocked)
    assert not _logged_in(attacker)
    assert owner_response.status_code == 302
    assert _logged_in(owner)


def test_the_fifth_failure_is_still_checked_the_sixth_is_not(alice):
    client = Client()
    responses = _fail(client, "alice@example.com", ATTACKER, 5)

    assert not any(_throttled(r) for r in responses)
    assert _throttled(_login(client, "alice@example.com", "wrong", ATTACKER))


def test_the_forwarded_address_counts_behind_a_trusted_proxy(alice, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    attacker, owner = Client(), Client()
    _fail(attacker, "alice@example.com", PROXY, 5, HTTP_X_FORWARDED_FOR=ATTACKER)

    blocked = _login(
        attacker, "alice@example.com", PASSWORD, PROXY, HTTP_X_FORWARDED_FOR=ATTACKER
    )
    owner_response = _login(
        owner, "alice@example.com", PASSWORD, PROXY, HTTP_X_FORWARDED_FOR=OWNER
    )

    assert _throttled(blocked)
    assert owner_response.status_code == 302
    assert _logged_in(owner)


def test_a_forged_header_does_not_escape_the_throttle(alice, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client = Client()
    for n in range(5):
        _login(
            client,
            "alice@example.com",
            "wrong",
            ATTACKER,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )

    response = _login(
        client,
        "alice@example.com",
        PASSWORD,
        ATTACKER,
        HTTP_X_FORWARDED_FOR="192.0.2.99",
    )

    assert _throttled(response)
    assert not _logged_in(client)


# --- Per address, across accounts ---------------------------------------------


def test_one_address_is_throttled_across_many_accounts(db):
    UserFactory(email="victim@example.com")
    client = Client()
    for n in range(10):
        _login(client, f"guess{n}@example.com", "wrong", ATTACKER)

    blocked = _login(client, "victim@example.com", PASSWORD, ATTACKER)
    elsewhere = Client()
    allowed = _login(elsewhere, "victim@example.com", PASSWORD, OWNER)

    assert _throttled(blocked)
    assert not _logged_in(client)
    assert allowed.status_code == 302
    assert _logged_in(elsewhere)


def test_ipv6_neighbours_in_one_64_share_a_count(alice):
    client = Client()
    for n in range(1, 6):
        _login(client, "alice@example.com", "wrong", f"2001:db8:1:2::{n}")

    response = _login(client, "alice@example.com", PASSWORD, "2001:db8:1:2::99")

    assert _throttled(response)


# --- The per-account ceiling -----------------------------------------------------


@pytest.fixture
def low_ceiling(settings):
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login_failed_account": "3/h/key",
    }


def _spray(email, times):
    for n in range(times):
        _fail(Client(), email, f"203.0.113.{100 + n}", 1)


def test_a_spray_from_many_addresses_meets_the_account_ceiling(alice, low_ceiling):
    _spray("alice@example.com", 3)

    stranger = Client()
    response = _login(stranger, "alice@example.com", PASSWORD, "203.0.113.200")

    assert _throttled(response)
    assert not _logged_in(stranger)


def test_the_ceiling_never_stops_the_owner_at_a_known_address(alice, low_ceiling):
    owner = Client()
    assert _login(owner, "alice@example.com", PASSWORD, OWNER).status_code == 302
    owner.logout()
    _spray("alice@example.com", 5)

    again = Client()
    response = _login(again, "alice@example.com", PASSWORD, OWNER)

    assert response.status_code == 302
    assert _logged_in(again)


def test_the_ceiling_never_stops_the_owner_on_a_known_device(alice, low_ceiling):
    owner = Client()
    assert _login(owner, "alice@example.com", PASSWORD, OWNER).status_code == 302
    device_cookie = owner.cookies[COOKIE_NAME].value
    owner.logout()
    _spray("alice@example.com", 5)

    travelling = Client()
    travelling.cookies[COOKIE_NAME] = device_cookie
    response = _login(travelling, "alice@example.com", PASSWORD, "192.0.2.50")

    assert response.status_code == 302
    assert _logged_in(travelling)


def test_a_forged_device_cookie_is_not_a_known_device(alice, low_ceiling):
    owner = Client()
    _login(owner, "alice@example.com", PASSWORD, OWNER)
    forged = owner.cookies[COOKIE_NAME].value[:-2] + "xx"
    _spray("alice@example.com", 5)

    attacker = Client()
    attacker.cookies[COOKIE_NAME] = forged
    response = _login(attacker, "alice@example.com", PASSWORD, "192.0.2.51")

    assert _throttled(response)
    assert not _logged_in(attacker)


def test_a_password_reset_lifts_the_ceiling_for_the_owner(alice, low_ceiling):
    _spray("alice@example.com", 3)
    owner = Client(REMOTE_ADDR="192.0.2.60")
    owner.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    link = re.search(r"http://testserver(\S+)", mail.outbox[0].body).group(1)
    form_url = owner.get(link)["Location"]
    owner.post(
        form_url, {"password1": "N3w-Passw0rd-2026", "password2": "N3w-Passw0rd-2026"}
    )

    response = _login(owner, "alice@example.com", "N3w-Passw0rd-2026", "192.0.2.60")

    assert response.status_code == 302
    assert _logged_in(owner)


# --- Redis down -------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "config.lib.cache.RedisCache", "LOCATION": DEAD_REDIS},
    }
    ratelimitcache._down_until.clear()
    caches["ratelimit"].fallback.clear()
    yield
    ratelimitcache._down_until.clear()
    caches["ratelimit"].fallback.clear()


def test_login_works_with_redis_down(alice, redis_down):
    client = Client()

    page = client.get(reverse("account_login"), REMOTE_ADDR=OWNER)
    response = _login(client, "alice@example.com", PASSWORD, OWNER)

    assert page.status_code == 200
    assert response.status_code == 302
    assert _logged_in(client)


def test_login_over_an_existing_session_works_with_redis_down(alice, redis_down):
    """Signing in moves the session to a new key; the old key's row goes even
    though its cached copy cannot be dropped (it holds nothing signed in)."""
    from django.contrib.sessions.models import Session

    client = Client()
    session = client.session  # a visitor's session from before signing in
    session["seen"] = "product"
    session.save()
    old_key = session.session_key
    client.cookies["sessionid"] = old_key

    response = _login(client, "alice@example.com", PASSWORD, OWNER)

    assert response.status_code == 302
    assert _logged_in(client)
    assert client.session.session_key != old_key
    assert client.session["seen"] == "product"
    assert not Session.objects.filter(session_key=old_key).exists()


def test_wrong_password_with_redis_down_is_a_form_error(alice, redis_down):
    response = _login(Client(), "alice@example.com", "wrong", OWNER)

    assert response.status_code == 200
    assert response.context["form"].errors


def test_failed_logins_are_still_throttled_with_redis_down(alice, redis_down):
    attacker, owner = Client(), Client()
    _fail(attacker, "alice@example.com", ATTACKER, 5)

    blocked = _login(attacker, "alice@example.com", PASSWORD, ATTACKER)
    owner_response = _login(owner, "alice@example.com", PASSWORD, OWNER)

    assert _throttled(blocked)
    assert not _logged_in(attacker)
    assert owner_response.status_code == 302


def test_signup_works_with_redis_down(redis_down):
    client = Client()
    page = client.get(reverse("account_signup"))
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": "A-long-Passw0rd-2026",
            "password2": "A-long-Passw0rd-2026",
        },
    )

    assert page.status_code == 200
    assert response.status_code == 302
    assert get_user_model().objects.filter(email="new@example.com").exists()


def test_password_reset_works_with_redis_down(alice, redis_down):
    client = Client()
    page = client.get(reverse("account_reset_password"))
    response = client.post(
        reverse("account_reset_password"), {"email": "alice@example.com"}
    )

    assert page.status_code == 200
    assert response.status_code == 302
    assert len(mail.outbox) == 1


def test_counting_returns_to_redis_when_it_is_back(alice, settings):
    if not settings.REDIS_URL:
        pytest.fail("this test needs REDIS_URL (counters in Redis)")
    limiter = caches["ratelimit"]
    ratelimitcache._down_until.clear()
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "config.lib.cache.RedisCache", "LOCATION": DEAD_REDIS},
    }
    limiter.set("probe", "local", 60)  # Redis down: kept in this process
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "config.lib.cache.RedisCache",
            "LOCATION": settings.REDIS_URL,
        },
    }
    limiter.set("probe", "shared", 60)

    assert caches["default"].get("probe") == "shared"
    assert limiter.fallback.get("probe") == "local"
    limiter.fallback.clear()


# --- /admin/login/?next= ------------------------------------------------------------


@pytest.fixture
def staff_client(client, staff, settings):
    settings.STAFF_REQUIRE_MFA = False
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "http://evil.example/admin/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "https:/\\evil.example/",
        "javascript:alert(1)",
        " https://evil.example/",
    ],
)
def test_admin_login_never_redirects_off_site(staff_client, target):
    response = staff_client.get(reverse("admin:login"), {"next": target})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_admin_login_follows_a_local_next(staff_client):
    target = reverse("admin:orders_order_changelist")

    response = staff_client.get(reverse("admin:login"), {"next": target})

    assert response["Location"] == target


def test_admin_login_refuses_plain_http_next_on_a_secure_request(staff_client):
    response = staff_client.get(
        reverse("admin:login"),
        {"next": "http://testserver/admin/orders/"},
        secure=True,
    )

    assert response["Location"] == reverse("admin:index")


def test_admin_login_for_a_visitor_keeps_only_a_safe_next(client):
    response = client.get(reverse("admin:login"), {"next": "https://evil.example/"})

    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
    assert response["Location"].startswith(reverse("account_login"))
