"""The supplier callback log: read-only, filterable, its bodies shown without a signature."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from fulfillment.models import SupplierCallback
from tests.factories.fulfillment import supplier_make

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:fulfillment_suppliercallback_changelist")
SIGN = "9e107d9d372bb6826bd81d3542a419d6CALLBACKSIGN"
# Session, user, permissions (user and group), the supplier filter's choices, the
# page's count and the page: the same however many callbacks (7 measured).
CALLBACK_CHANGELIST_MAX_QUERIES = 7


def _callback(client, supplier: str, body: bytes):
    return client.post(
        reverse("fulfillment:supplier-callback", args=[supplier]),
        body,
        content_type="application/json",
    )


def _change(callback: SupplierCallback) -> str:
    return reverse("admin:fulfillment_suppliercallback_change", args=[callback.pk])


@pytest.fixture
def acme(db):
    return supplier_make("acme")


def test_callback_log_lists_and_filters_by_outcome_and_supplier(
    operator_client, client, acme, django_assert_max_num_queries
):
    body = {"customer_order_no": "KQT-CB-1", "state": "success", "sign": SIGN}
    _callback(client, "acme", json.dumps(body).encode())  # bad signature
    _callback(client, "nobody", b"{}")  # unknown supplier

    with django_assert_max_num_queries(CALLBACK_CHANGELIST_MAX_QUERIES):
        everything = operator_client.get(CHANGELIST)
    bad = operator_client.get(CHANGELIST, {"outcome__exact": "bad_signature"})
    of_acme = operator_client.get(CHANGELIST, {"supplier__id__exact": acme.pk})

    assert everything.context["cl"].result_count == 2
    assert "nobody" in everything.content.decode()
    assert SIGN not in everything.content.decode()
    (row,) = bad.context["cl"].result_list
    assert (row.supplier_id, row.outcome) == (acme.pk, "bad_signature")
    assert [c.pk for c in of_acme.context["cl"].result_list] == [row.pk]


def test_callback_page_shows_the_body_with_the_signature_masked(
    operator_client, client, acme
):
    body = {
        "customer_order_no": "KQT-CB-2",
        "state": "failed",
        "fail_reason": "账号不存在",
        "sign": SIGN,
    }
    _callback(client, "acme", json.dumps(body).encode())
    callback = SupplierCallback.objects.get()
    assert SIGN in callback.body  # stored as received

    response = operator_client.get(_change(callback))

    html = response.content.decode()
    assert response.status_code == 200
    assert SIGN not in html
    assert "&quot;sign&quot;: &quot;***&quot;" in html
    assert "账号不存在" in html
    assert 'name="body"' not in html


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        # Cut off at the stored size: not JSON any more, masked by pattern.
        (
            '{"customer_order_no": "KQT-CB-3", "sign": "' + SIGN + '", "state": "succ',
            "KQT-CB-3",
        ),
        ('{"sign":"' + SIGN, "{"),
        ("customer_order_no=KQT-CB-4&sign=" + SIGN + "&state=success", "KQT-CB-4"),
    ],
)
def test_callback_page_masks_the_signature_of_a_body_that_is_not_json(
    operator_client, acme, body, kept
):
    callback = SupplierCallback.objects.create(
        supplier=acme, supplier_name="acme", body=body, body_size=len(body)
    )

    response = operator_client.get(_change(callback))

    html = response.content.decode()
    assert SIGN not in html
    assert kept in html


def test_callback_log_is_read_only_even_for_superuser(admin_client, acme):
    callback = SupplierCallback.objects.create(
        supplier=acme, supplier_name="acme", body="{}", body_size=2
    )

    add = admin_client.get(reverse("admin:fulfillment_suppliercallback_add"))
    post = admin_client.post(_change(callback), {"outcome": "applied"})

    callback.refresh_from_db()
    assert (add.status_code, post.status_code) == (403, 403)
    assert callback.outcome == SupplierCallback.Outcome.RECEIVED
