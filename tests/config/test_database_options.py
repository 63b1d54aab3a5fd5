"""Our PostgreSQL connections price random reads for SSDs and cached data."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_connections_plan_with_the_ssd_random_page_cost():
    """With the server's default (4), the risk engine's database counts hash-join
    every order line once a shop has tens of thousands of orders (settings.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        (value,) = cursor.fetchone()
    assert float(value) == pytest.approx(1.1)
