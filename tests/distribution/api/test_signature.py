"""Every request is signed (SPEC §4.4): key, timestamp window, nonce, exact path and body."""

from __future__ import annotations

import datetime as dt
import json
import time
from types import SimpleNamespace

import pytest

from distribution.models import ApiNonce
from distribution.partners import keys
from distribution.partners.keys import api_key_revoke, api_nonces_purge
from tests.distribution.api.conftest import API, error_of, signed_headers

pytestmark = pytest.mark.django_db


def test_signed_request_gets_the_balance(api):
    response = api.get(f"{API}/balance")

    assert response.status_code == 200
    assert response.json() == {"balance": "100.00"}


def test_request_with_a_wrong_signature_is_refused(api, acme):
    response = api.get(f"{API}/balance", secret=acme.secret + "x")

    assert error_of(response) == (401, "bad_signature")


def test_request_without_headers_is_refused(client, acme):
    response = client.get(f"{API}/balance")

    assert error_of(response) == (401, "missing_signature")


def test_unknown_key_is_refused(api):
    response = api.get(f"{API}/balance", key_id="pk_doesnotexist")

    assert error_of(response) == (401, "bad_key")


def test_a_key_signed_with_another_partners_secret_is_refused(api, globex):
    response = api.get(f"{API}/balance", secret=globex.secret)

    assert error_of(response) == (401, "bad_signature")


def test_another_partners_key_cannot_be_used_with_our_secret(api, globex):
    response = api.get(f"{API}/balance", key_id=globex.key.key_id)

    assert error_of(response) == (401, "bad_signature")


def test_revoked_key_is_refused(api, acme):
    assert api_key_revoke(api_key_id=acme.key.pk)

    response = api.get(f"{API}/balance")

    assert error_of(response) == (401, "bad_key")
    assert not api_key_revoke(api_key_id=acme.key.pk)  # once


def test_disabled_partner_is_refused(api, acme):
    acme.account.is_enabled = False
    acme.account.save()

    assert error_of(api.get(f"{API}/balance")) == (401, "bad_key")


def test_replayed_nonce_is_refused(api):
    first = api.get(f"{API}/balance", nonce="same-nonce-1")
    again = api.get(f"{API}/balance", nonce="same-nonce-1")

    assert first.status_code == 200
    assert error_of(again) == (401, "replayed_nonce")


def test_the_same_nonce_is_fine_for_another_key(api, client, globex):
    from tests.distribution.api.conftest import SignedClient

    assert api.get(f"{API}/balance", nonce="shared").status_code == 200
    other = SignedClient(client, globex).get(f"{API}/balance", nonce="shared")

    assert other.status_code == 200


@pytest.fixture
def server_clock(monkeypatch) -> int:
    """The server's clock stopped at a whole second: a boundary is a boundary
    however long the request takes on a busy machine."""
    now = int(time.time())
    frozen = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    monkeypatch.setattr(keys, "timezone", SimpleNamespace(now=lambda: frozen))
    return now


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_timestamp_outside_five_minutes_is_refused(api, server_clock, skew):
    response = api.get(f"{API}/balance", timestamp=server_clock + skew)

    assert error_of(response) == (401, "bad_timestamp")


@pytest.mark.parametrize("skew", [-300, 300, -290, 290])
def test_timestamp_inside_five_minutes_is_accepted(api, server_clock, skew):
    response = api.get(f"{API}/balance", timestamp=server_clock + skew)

    assert response.status_code == 200


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "-5", "99999999999999999999"])
def test_malformed_timestamp_is_refused(client, acme, timestamp):
    headers = signed_headers(acme, "GET", f"{API}/balance")
    headers["X-Timestamp"] = timestamp

    response = client.get(f"{API}/balance", headers=headers)

    assert error_of(response) == (401, "bad_timestamp")


def test_signature_covers_the_query_string(client, acme):
    # Signed for the bare path, sent with a query string.
    headers = signed_headers(acme, "GET", f"{API}/balance")

    response = client.get(f"{API}/balance?x=1", headers=headers)

    assert error_of(response) == (401, "bad_signature")


def test_signature_with_the_query_string_is_accepted(client, acme):
    headers = signed_headers(acme, "GET", f"{API}/balance?x=1")

    assert client.get(f"{API}/balance?x=1", headers=headers).status_code == 200


def test_signature_covers_the_body(client, acme, card_sku):
    signed = json.dumps({"out_trade_no": "A", "sku": "TX-VIP-MONTH", "quantity": 1})
    sent = json.dumps({"out_trade_no": "A", "sku": "TX-VIP-MONTH", "quantity": 5})
    headers = signed_headers(acme, "POST", f"{API}/orders", signed.encode())

    response = client.generic(
        "POST", f"{API}/orders", sent, content_type="application/json", headers=headers
    )

    assert error_of(response) == (401, "bad_signature")


def test_nonces_are_purged_after_fifteen_minutes(api):
    api.get(f"{API}/balance", nonce="old")
    ApiNonce.objects.update(
        created_at=ApiNonce.objects.get().created_at
        - __import__("datetime").timedelta(minutes=16)
    )

    assert api_nonces_purge() == 1
    assert not ApiNonce.objects.exists()


def test_openapi_document_is_public_and_describes_every_endpoint(client):
    response = client.get(f"{API}/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/products",
        "/api/v1/orders",
        "/api/v1/orders/{out_trade_no}",
        "/api/v1/balance",
    } <= set(paths)


def test_unknown_api_path_is_a_json_404(client):
    response = client.get(f"{API}/nothing-here")

    assert error_of(response) == (404, "not_found")
    assert response["Content-Type"].startswith("application/json")


def test_wrong_method_is_a_json_405(api):
    response = api.post(f"{API}/balance", {})

    assert error_of(response) == (405, "method_not_allowed")
