"""The custodian persona for the vault admin (the operator is in tests/conftest.py).

The operator runs imports and sees masked codes; the custodian may also reveal and
export plaintext. Batch and code tests alike check what each of them may and may not do.

The top-up admin tests use the engine's top-up shop on the simulator (a QQ top-up SKU
mapped to it), so its pages show what the engine really records.
"""

from __future__ import annotations

import pytest

from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.fulfillment.topups.conftest import (
    _fresh_json_clients,  # noqa: F401 (autouse: HTTP clients closed after each test)
    sim_supplier,  # noqa: F401
    topup_sku,  # noqa: F401
)


@pytest.fixture
def groups(staff_groups):
    return staff_groups


@pytest.fixture
def custodian(groups):
    """An operator who also holds the code-custodian permissions."""
    user = UserFactory(username="custodian", is_staff=True)
    user.groups.add(*groups)
    return user


@pytest.fixture
def custodian_client(client, custodian):
    client.force_login(custodian)
    return client


@pytest.fixture
def sku(db):
    return SkuFactory(code="TX-VIP-MONTH")
