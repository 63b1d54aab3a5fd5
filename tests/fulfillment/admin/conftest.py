"""The custodian persona for the vault admin (the operator is in tests/conftest.py).

The operator runs imports and sees masked codes; the custodian may also reveal and
export plaintext. Batch and code tests alike check what each of them may and may not do.
"""

from __future__ import annotations

import pytest

from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory


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
