"""A partner's top-up followed through a real Celery worker on Redis, the supplier
simulator over HTTP, and the partner's webhook (500 first, then 200) signed and retried."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from distribution.models import WebhookAttempt, WebhookDelivery
from distribution.partners.balance import balance_of
from distribution.partners.signing import webhook_sign
from distribution.webhooks import webhook_secret_set
from orders.models import Order
from tests.distribution.api.conftest import API, make_partner, signed_headers
from tests.distribution.api.receiver import WebhookReceiver
from tests.factories.distribution import TierFactory
from tests.fulfillment.topups.conftest import (  # noqa: F401 (fixtures)
    QQ,
    WorkerLauncher,
    _fresh_json_clients,
    on_redis,
    sim_supplier,
    topup_sku,
    wait_until,
    worker_log_dir,
)

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec-worker"


@pytest.fixture(scope="module")
def worker(django_db_setup, live_server, worker_log_dir):  # noqa: F811
    """One worker for the module; webhook retries wait 1 s, not 30."""
    launcher = WorkerLauncher(live_server.url, worker_log_dir)
    yield launcher("partner-api", WEBHOOK_RETRY_BASE_SECONDS=1)
    launcher.stop_all()


def call(live_server, partner, method: str, path: str, payload=None) -> httpx.Response:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = signed_headers(partner, method, path, body)
    if body:
        headers["Content-Type"] = "application/json"
    return httpx.request(
        method,
        live_server.url + path,
        content=body or None,
        headers=headers,
        timeout=30,
    )


def test_partner_topup_is_delivered_by_the_worker_and_the_webhook_retried(
    worker,
    on_redis,  # noqa: F811
    live_server,
    sim_supplier,  # noqa: F811
):
    receiver = WebhookReceiver(script=[500, 200])
    try:
        tier = TierFactory(name="总代", discount_rate=Decimal("0.10"))
        partner = make_partner("acme", tier=tier, balance=Decimal("100.00"))
        partner.account.webhook_url = receiver.url
        partner.account.save()
        webhook_secret_set(account=partner.account, secret=SECRET)

        placed = call(
            live_server,
            partner,
            "POST",
            f"{API}/orders",
            {
                "out_trade_no": "T-1",
                "sku": "TX-DIRECT",
                "quantity": 1,
                "recharge_account": QQ,
            },
        )

        assert placed.status_code == 201, placed.text
        assert placed.json()["amount"] == "25.20"  # 28.00 less 10 %
        assert placed.json()["status"] == "fulfilling"
        assert placed.json()["codes"] == []
        assert balance_of(account_id=partner.account.pk) == Decimal("74.80")
        order = Order.objects.get(number=placed.json()["number"])
        wait_until(
            lambda: Order.objects.get(pk=order.pk).status == Order.Status.DELIVERED,
            worker=worker,
        )
        shown = call(live_server, partner, "GET", f"{API}/orders/T-1").json()
        assert shown["status"] == "delivered"
        assert [t["status"] for t in shown["topups"]] == ["succeeded"]
        assert shown["topups"][0]["supplier_order_no"]

        wait_until(
            lambda: WebhookDelivery.objects.filter(
                status=WebhookDelivery.Status.DELIVERED
            ).exists(),
            worker=worker,
            sweep=False,
        )
        attempts = list(
            WebhookAttempt.objects.order_by("number").values_list(
                "number", "succeeded", "response_code"
            )
        )
        assert attempts == [(1, False, 500), (2, True, 200)]
        assert len(receiver.received) == 2
        last = receiver.received[-1]
        assert last.headers["X-Signature"] == webhook_sign(
            secret=SECRET, timestamp=last.headers["X-Timestamp"], body=last.body
        )
        assert json.loads(last.body) == {"event": "order.delivered", "order": shown}
    finally:
        receiver.stop()
