"""checkout_paid_orders.py's setup: the catalog, the codes (through the real import
service) and the shoppers with live sessions.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from decimal import Decimal
from typing import Any

import psycopg2

PRICE = Decimal("30.00")
SKU_APP, SKU_RAW, SKU_RUSH = "BENCH-APP", "BENCH-RAW", "BENCH-RUSH"
STOCK_TEST_CLIENTS = 8


def codes_file(count: int) -> bytes:
    # 16 random hex characters: the shape of a streaming-membership card code.
    return "\n".join(secrets.token_hex(8).upper() for _ in range(count)).encode()


def seed(
    *, codes: int, raw_codes: int, rush_codes: int, shoppers: int, rush_shoppers: int
) -> dict[str, Any]:
    """Catalog, codes (through card_codes_import), shoppers with live sessions."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password

    from catalog.models import Platform, Product, Sku
    from fulfillment.services import card_codes_import

    platform = Platform.objects.create(name="Bench", slug="bench", account_rule="any")
    skus = {}
    timings = {}
    for code, count in ((SKU_APP, codes), (SKU_RAW, raw_codes), (SKU_RUSH, rush_codes)):
        product = Product.objects.create(
            platform=platform, name=f"Bench {code}", slug=code.lower()
        )
        sku = Sku.objects.create(
            product=product,
            code=code,
            name="月卡",
            face_value=PRICE,
            price=PRICE,
            max_per_order=5,
        )
        t0 = time.perf_counter()
        result = card_codes_import(
            sku=sku, content=codes_file(count), file_name=f"{code}.txt", actor=None
        )
        timings[code] = time.perf_counter() - t0
        if result.imported != count:
            raise SystemExit(f"seeding {code}: imported {result.imported} of {count}")
        skus[code] = sku.id

    User = get_user_model()
    unusable = make_password(None)  # no password hashing: nobody logs in through a form
    users = User.objects.bulk_create(
        [
            User(
                username=f"shopper{i}",
                email=f"shopper{i}@example.com",
                password=unusable,
            )
            for i in range(shoppers + rush_shoppers)
        ]
    )
    sessions = sessions_create(
        [
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            for user in users
        ]
    )
    return {
        "sku_ids": skus,
        "import_seconds": timings,
        "sessions": sessions[:shoppers],
        "rush_sessions": sessions[shoppers:],
        "user_ids": [u.pk for u in users[:shoppers]],
    }


def analyze(dsn: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE")


def risk_rules_create(*, sku_id: int) -> None:
    """Twenty active rules that all evaluate and never fire on the bench's shoppers
    (every order comes from one address: real limits would stop the load)."""
    from risk_overhead import create_rules

    from catalog.models import Sku
    from risk.cache import risk_rules_changed
    from risk.models import RiskRule

    create_rules({"sku": Sku.objects.get(pk=sku_id)})
    RiskRule.objects.exclude(threshold=None).update(threshold=Decimal(10) ** 9)
    risk_rules_changed()
    if RiskRule.objects.filter(active=True).count() != 20:
        raise SystemExit("expected 20 active risk rules")


DB_SESSION_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


def sessions_create(payloads: list[dict[str, str]]) -> list[str]:
    """A live session per payload; returns their keys.

    Sessions the database holds (db, cached_db: a cache miss reads the row) are
    inserted in bulk, since a rush needs one per buyer (10,000); any other engine
    gets one store.create() each.
    """
    from importlib import import_module

    from django.conf import settings
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if settings.SESSION_ENGINE not in DB_SESSION_ENGINES:
        keys = []
        for payload in payloads:
            store = store_class()
            store.update(payload)
            store.create()
            keys.append(store.session_key)
        return keys
    encoder = store_class()
    expires = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    rows = [
        Session(
            session_key=get_random_string(32, VALID_KEY_CHARS),
            session_data=encoder.encode(payload),
            expire_date=expires,
        )
        for payload in payloads
    ]
    Session.objects.bulk_create(rows, batch_size=2000)
    if settings.SESSION_ENGINE.endswith("cached_db"):
        # A buyer in a rush has just loaded the confirmation page, so their
        # session is in the cache as cached_db leaves it after a first read.
        from django.core.cache import caches

        caches[settings.SESSION_CACHE_ALIAS].set_many(
            {
                store_class.cache_key_prefix + key: payload
                for key, payload in zip(
                    [row.session_key for row in rows], payloads, strict=True
                )
            },
            settings.SESSION_COOKIE_AGE,
        )
    return [row.session_key for row in rows]
