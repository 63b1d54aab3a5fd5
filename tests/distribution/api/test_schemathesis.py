"""schemathesis against /api/v1/openapi.json on a live server, every request signed:
no server error, no response that breaks the documented schema (SPEC §4.4)."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NOT_SET

from tests.distribution.api.conftest import make_partner, signed_headers
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import TierFactory
from tests.factories.fulfillment import stock_codes

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def signing_partner(transactional_db, live_server, settings):
    settings.PARTNER_API_RATE_LIMIT = "100000/m"
    sku = SkuFactory(code="TX-VIP-MONTH", price=Decimal("30.00"), max_per_order=5)
    stock_codes(sku, 40, cost_price=Decimal("1.00"))
    tier = TierFactory(name="总代", discount_rate=Decimal("0.10"))
    return make_partner("acme", tier=tier, balance=Decimal("100000.00"))


@pytest.fixture
def api_schema(signing_partner, live_server):
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def _body_bytes(body: object) -> bytes:
    """The exact bytes to send (and sign): negative cases may be raw bytes."""
    if body is NOT_SET:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return json.dumps(body, default=lambda b: bytes(b).decode("latin-1")).encode()


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_every_generated_request_within_its_schema(
    case, live_server, signing_partner
):
    body = _body_bytes(case.body)
    query = urlencode(case.query or {}, doseq=True)
    request = httpx.Request(
        case.method,
        f"{live_server.url}{case.formatted_path}" + (f"?{query}" if query else ""),
        content=body or None,
        headers={"Content-Type": case.media_type or "application/json"} if body else {},
    )
    path = request.url.raw_path.decode()
    request.headers.update(signed_headers(signing_partner, case.method, path, body))

    with httpx.Client(timeout=30) as client:
        response = client.send(request)

    case.validate_response(response, checks=CHECKS)
    assert response.headers["Content-Type"].startswith("application/json")
