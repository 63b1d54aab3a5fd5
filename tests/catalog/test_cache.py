"""catalog/cache.py `sku_on_sale`: the process's SKUs, shared by its requests.

Every request of a process gets the same SKU object for a catalog version
(no copy per request); a catalog change, LOCAL_SECONDS or the memo's bound
make it read the database again. That no caller changes a shared SKU is
checked after every test (tests/conftest.py, `_shared_skus_unchanged`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog import cache as catalog_cache
from tests.factories.catalog import SkuFactory

pytestmark = pytest.mark.django_db


def test_sku_on_sale_gives_every_request_the_same_sku_without_sql():
    SkuFactory(code="TX-M", price=Decimal("30.00"))
    now = timezone.now()
    first = catalog_cache.sku_on_sale(code="TX-M", now=now)

    with CaptureQueriesContext(connection) as queries:
        again = catalog_cache.sku_on_sale(code="TX-M", now=now)

    assert again is first
    assert len(queries) == 0
    assert again.product.platform.is_active
    assert again.validity_rule is not None


def test_sku_on_sale_reads_the_new_price_after_a_catalog_change():
    sku = SkuFactory(code="TX-M", price=Decimal("30.00"))
    now = timezone.now()
    before = catalog_cache.sku_on_sale(code="TX-M", now=now)

    sku.price = Decimal("25.00")
    sku.save()  # the catalog's version moves (signals)
    after = catalog_cache.sku_on_sale(code="TX-M", now=now)

    assert before.price == Decimal("30.00")
    assert after.price == Decimal("25.00")


def test_sku_on_sale_reads_again_once_its_copy_is_local_seconds_old(monkeypatch):
    SkuFactory(code="TX-M")
    now = timezone.now()
    first = catalog_cache.sku_on_sale(code="TX-M", now=now)
    later = catalog_cache.time.monotonic() + catalog_cache.LOCAL_SECONDS + 1

    monkeypatch.setattr(catalog_cache.time, "monotonic", lambda: later)
    again = catalog_cache.sku_on_sale(code="TX-M", now=now)

    assert again is not first
    assert again.pk == first.pk


def test_sku_on_sale_keeps_a_bounded_number_of_codes(monkeypatch):
    monkeypatch.setattr(catalog_cache, "SKU_MEMO_SIZE", 3)
    SkuFactory(code="TX-M")
    now = timezone.now()
    catalog_cache.sku_on_sale(code="TX-M", now=now)

    for n in range(10):  # codes nobody sells: remembered as None, bounded
        assert catalog_cache.sku_on_sale(code=f"NONE-{n}", now=now) is None

    assert len(catalog_cache._sku_memo[1]) <= 3
    assert catalog_cache.sku_on_sale(code="TX-M", now=now).code == "TX-M"


def test_sku_on_sale_applies_the_sale_window_at_each_call():
    now = timezone.now()
    SkuFactory(code="TX-M", sale_ends_at=now + dt.timedelta(minutes=1))

    assert catalog_cache.sku_on_sale(code="TX-M", now=now) is not None
    assert (
        catalog_cache.sku_on_sale(code="TX-M", now=now + dt.timedelta(minutes=2))
        is None
    )
