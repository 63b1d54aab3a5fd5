"""Shared fixtures: personas (alice the shopper, staff), settings, the sandbox signer."""

from __future__ import annotations

import pickle

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import translation

from catalog import cache as catalog_cache
from config.celery import app as celery_app
from config.roles import staff_groups_sync
from orders.gateways import sandbox
from risk.cache import risk_version_forget
from tests.factories.accounts import UserFactory

pytest_plugins = ["tests.fixtures.supplier_simulator"]


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks run in-process unless a test starts a real worker (tests/orders/test_tasks.py)."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = django_settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters live in the cache (Redis): no test inherits another's;
    nor the risk rules' version token a process trusts for a second."""
    cache.clear()
    risk_version_forget()


@pytest.fixture(autouse=True)
def _shared_skus_unchanged(monkeypatch):
    """The SKUs `catalog.cache.sku_on_sale` hands out are shared by every request
    of a process: no caller may change one (nor its product, platform or
    rule). Every SKU read during a test is pickled as read and compared at the
    end: a view, service or template that changed one fails the test."""
    read = []
    real = catalog_cache._sku_read

    def recorded(code):
        sku = real(code)
        if sku is not None:
            read.append((sku, pickle.dumps(sku)))
        return sku

    monkeypatch.setattr(catalog_cache, "_sku_read", recorded)
    yield
    changed = [sku.code for sku, before in read if pickle.dumps(sku) != before]
    assert not changed, f"a shared SKU was changed: {changed}"


@pytest.fixture(autouse=True)
def _default_language():
    """A request in English leaves English active in this thread (LocaleMiddleware
    never deactivates): no test inherits another's language."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", email="alice@example.com")


@pytest.fixture
def mallory(db):
    return UserFactory(username="mallory", email="mallory@example.com")


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", email="staff@example.com", is_staff=True)


@pytest.fixture
def staff_groups(db):
    """(Operators, Code custodians), with exactly their permissions."""
    return staff_groups_sync()


@pytest.fixture
def operator(staff_groups):
    """Staff in the Operators group: catalog, batches, orders; no plaintext codes."""
    user = UserFactory(username="operator", is_staff=True)
    user.groups.add(staff_groups[0])
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def signed_notify(order, *, trade_no="T1", status=sandbox.TRADE_SUCCESS, amount=None):
    """A notify exactly as the sandbox gateway signs it."""
    return sandbox.notify_fields(
        out_trade_no=order.number,
        trade_no=trade_no,
        amount=order.total_amount if amount is None else amount,
        status=status,
    )
