"""Supplier health: requests, success rate, p50/p95 latency and the last error per
supplier over the last hour and day, from the top-up timeline, on the supplier pages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from fulfillment import selectors
from fulfillment.models import TopUpEvent
from fulfillment.selectors import supplier_health
from tests.factories.fulfillment import (
    mapping_make,
    request_event_make,
    supplier_make,
    topup_make,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:fulfillment_supplier_changelist")
# Session, user, permissions (user and group), the page's two counts, the page, and
# two health computations (hour, day) of 3 queries each on PostgreSQL, for all the
# listed suppliers at once: the same however many suppliers and requests (13 measured).
SUPPLIER_CHANGELIST_MAX_QUERIES = 13
LATENCIES = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


@pytest.fixture(params=["database", "python"])
def percentile_path(request, monkeypatch):
    """Both ways the percentiles are computed: PostgreSQL's percentile_cont, and the
    Python fallback the SQLite demo uses. They must agree."""
    monkeypatch.setattr(
        selectors, "_percentiles_in_db", lambda: request.param == "database"
    )
    return request.param


@pytest.fixture
def acme(topup_sku):
    supplier = supplier_make("acme")
    mapping_make(topup_sku, supplier)
    return supplier


@pytest.fixture
def topup(topup_sku):
    return topup_make(topup_sku)


def _known_requests(topup, supplier):
    """Ten requests in the last hour, 10..100 ms, the 30 and 70 ms ones failed."""
    for latency in LATENCIES:
        request_event_make(
            topup,
            supplier,
            latency_ms=latency,
            ok=latency not in (30, 70),
            note="" if latency not in (30, 70) else f"timeout after {latency} ms",
            ago=dt.timedelta(minutes=latency // 10),
        )


def test_supplier_health_from_known_latencies(acme, topup, percentile_path):
    _known_requests(topup, acme)

    health = supplier_health(since=timezone.now() - dt.timedelta(hours=1))

    got = health[acme.pk]
    assert (got.requests, got.succeeded) == (10, 8)
    assert got.success_rate == pytest.approx(0.8)
    # percentile_cont: linear interpolation between ranks (0.5 × 9 = 4.5, 0.95 × 9 = 8.55).
    assert got.p50_ms == pytest.approx(55.0)
    assert got.p95_ms == pytest.approx(95.5)
    # The 30 ms one is the latest failure (3 minutes ago; the 70 ms one was 7).
    assert got.last_error == "timeout after 30 ms"
    assert got.last_error_at is not None


def test_supplier_health_counts_only_requests_inside_the_window(
    acme, topup, topup_sku, percentile_path
):
    _known_requests(topup, acme)
    request_event_make(
        topup, acme, latency_ms=9000, ok=False, ago=dt.timedelta(hours=3)
    )
    # Not requests: a callback and a state change never count, whatever they carry.
    TopUpEvent.objects.create(
        topup=topup, supplier=acme, kind=TopUpEvent.Kind.CALLBACK, latency_ms=5000
    )
    TopUpEvent.objects.create(topup=topup, kind=TopUpEvent.Kind.STATE, ok=False)
    # A request without a latency (no reply) counts, but not in the percentiles.
    request_event_make(topup, acme, latency_ms=None, ok=False, note="")

    hour = supplier_health(since=timezone.now() - dt.timedelta(hours=1))[acme.pk]
    day = supplier_health(since=timezone.now() - dt.timedelta(days=1))[acme.pk]

    assert (hour.requests, hour.succeeded) == (11, 8)
    assert (hour.p50_ms, hour.p95_ms) == (pytest.approx(55.0), pytest.approx(95.5))
    assert hour.last_error == "HTTP 200"  # no note, no reply code: its HTTP status
    assert (day.requests, day.succeeded) == (12, 8)
    assert day.p50_ms == pytest.approx(60.0)
    assert day.p95_ms == pytest.approx(4550.0)  # 0.95 × 10 = 9.5: halfway 100 → 9000


def test_supplier_health_gives_every_supplier_an_entry(acme, topup, percentile_path):
    idle = supplier_make("idle")
    request_event_make(
        topup,
        acme,
        ok=False,
        note="",
        response={"code": 3001, "message": "余额不足", "sign": "***"},
    )

    health = supplier_health(since=timezone.now() - dt.timedelta(hours=1))

    assert health[idle.pk].requests == 0
    assert health[idle.pk].success_rate is None
    assert (health[idle.pk].p50_ms, health[idle.pk].p95_ms) == (None, None)
    assert health[idle.pk].last_error == ""
    assert health[acme.pk].last_error == "3001 余额不足"
    assert health[acme.pk].success_rate == 0.0


def test_supplier_changelist_shows_hour_and_day_health(
    operator_client, acme, topup, django_assert_max_num_queries
):
    _known_requests(topup, acme)
    for _ in range(5):
        request_event_make(topup, acme, latency_ms=400, ago=dt.timedelta(hours=5))

    with django_assert_max_num_queries(SUPPLIER_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(CHANGELIST)

    html = response.content.decode()
    (row,) = response.context["cl"].result_list
    assert (row.health_hour.requests, row.health_day.requests) == (10, 15)
    assert "10 次" in html
    assert "成功 80.0%" in html
    assert "p50 55 ms · p95 96 ms" in html  # 95.5 shown rounded
    assert "15 次" in html
    assert "成功 86.7%" in html
    assert "timeout after 30 ms" in html


def test_supplier_changelist_query_count_does_not_grow_with_suppliers(
    operator_client, acme, topup, topup_sku, django_assert_max_num_queries
):
    _known_requests(topup, acme)
    for n in range(8):
        other = supplier_make(f"other-{n}")
        mapping_make(topup_sku, other, f"P-{n}")
        request_event_make(topup, other, latency_ms=100 + n)

    with django_assert_max_num_queries(SUPPLIER_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(CHANGELIST)

    assert len(response.context["cl"].result_list) == 9
    assert "无请求" not in response.content.decode()


def test_supplier_changelist_says_when_a_supplier_had_no_requests(
    operator_client, acme
):
    response = operator_client.get(CHANGELIST)

    assert response.status_code == 200
    assert "无请求" in response.content.decode()


def test_supplier_change_page_shows_health_and_balance(operator_client, acme, topup):
    _known_requests(topup, acme)
    acme.last_balance = "1234.50"
    acme.balance_checked_at = timezone.now()
    acme.save(update_fields=["last_balance", "balance_checked_at"])

    response = operator_client.get(
        reverse("admin:fulfillment_supplier_change", args=[acme.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "1234.50" in html
    assert "成功 80.0%" in html
    assert "timeout after 30 ms" in html
