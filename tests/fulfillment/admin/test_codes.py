"""The code admin: codes stay masked; reveal and export are audited; the access log."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from fulfillment import vault
from fulfillment.models import CardCode, CodeAccessLog
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

# Session, user, two permission lookups, the page, its count, the SKU filter's
# choices: a fixed number however many codes are listed (7 when measured).
CARDCODE_CHANGELIST_MAX_QUERIES = 9


@pytest.fixture
def stocked(sku, alice):
    """Known codes in the vault, two of them reserved by an order."""
    codes = make_codes(6)
    stock_codes(sku, codes)
    order = order_place(user=alice, sku_code=sku.code, quantity=2)
    return codes, order


@pytest.mark.parametrize("who", ["operator_client", "custodian_client", "admin_client"])
def test_card_code_changelist_never_contains_plaintext(request, stocked, who):
    codes, order = stocked
    client = request.getfixturevalue(who)

    response = client.get(reverse("admin:fulfillment_cardcode_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert order.number in html
    for code in codes:
        assert code not in html
        assert vault.mask(code) in html
    for stored in CardCode.objects.all():
        assert stored.ciphertext not in html
        assert stored.fingerprint not in html


def test_card_code_change_page_shows_no_plaintext_ciphertext_or_fingerprint(
    custodian_client, stocked
):
    codes, _ = stocked
    stored = CardCode.objects.order_by("pk").first()

    response = custodian_client.get(
        reverse("admin:fulfillment_cardcode_change", args=[stored.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert stored.hint in html
    assert stored.ciphertext not in html
    assert stored.fingerprint not in html
    assert all(code not in html for code in codes)
    assert reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk]) in html
    assert not CodeAccessLog.objects.exists()


def test_card_code_change_page_offers_no_reveal_to_operator(operator_client, stocked):
    stored = CardCode.objects.first()

    response = operator_client.get(
        reverse("admin:fulfillment_cardcode_change", args=[stored.pk])
    )

    assert response.status_code == 200
    assert "显示卡密" not in response.content.decode()


def test_card_code_changelist_query_count_does_not_grow_with_codes(
    operator_client, sku, alice, django_assert_max_num_queries
):
    stock_codes(sku, 5)
    order_place(user=alice, sku_code=sku.code, quantity=2)
    with django_assert_max_num_queries(CARDCODE_CHANGELIST_MAX_QUERIES):
        operator_client.get(reverse("admin:fulfillment_cardcode_changelist"))

    stock_codes(SkuFactory(), 60)

    with django_assert_max_num_queries(CARDCODE_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(reverse("admin:fulfillment_cardcode_changelist"))

    assert response.status_code == 200


def test_card_code_changelist_finds_codes_by_order_number(operator_client, stocked):
    _, order = stocked

    response = operator_client.get(
        reverse("admin:fulfillment_cardcode_changelist"), {"q": order.number}
    )

    assert response.context["cl"].result_count == 2


@pytest.mark.parametrize("lookup", ["ciphertext__startswith", "fingerprint", "key_id"])
def test_card_code_changelist_refuses_lookups_on_secret_fields(
    admin_client, stocked, lookup
):
    response = admin_client.get(
        reverse("admin:fulfillment_cardcode_changelist"), {lookup: "a"}
    )

    assert response.status_code == 400


def test_card_code_add_and_delete_are_forbidden_even_for_superuser(
    admin_client, stocked
):
    stored = CardCode.objects.first()

    add = admin_client.get(reverse("admin:fulfillment_cardcode_add"))
    delete = admin_client.get(
        reverse("admin:fulfillment_cardcode_delete", args=[stored.pk])
    )

    assert (add.status_code, delete.status_code) == (403, 403)


# --- reveal ---------------------------------------------------------------------


def test_card_code_reveal_forbidden_for_operator_and_writes_no_log(
    operator_client, stocked
):
    stored = CardCode.objects.first()

    response = operator_client.post(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk])
    )

    assert response.status_code == 403
    assert not CodeAccessLog.objects.exists()


def test_card_code_reveal_redirects_anonymous_to_login(client, stocked):
    stored = CardCode.objects.first()

    response = client.post(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk])
    )

    assert response.status_code == 302
    assert not CodeAccessLog.objects.exists()


def test_card_code_reveal_refuses_get(custodian_client, stocked):
    stored = CardCode.objects.first()

    response = custodian_client.get(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk])
    )

    assert response.status_code == 405
    assert not CodeAccessLog.objects.exists()


def test_card_code_reveal_shows_plaintext_once_audited_and_not_cached(
    custodian_client, custodian, stocked
):
    codes, _ = stocked
    stored = CardCode.objects.order_by("pk").first()
    plaintext = vault.open_sealed(ciphertext=stored.ciphertext, key_id=stored.key_id)

    response = custodian_client.post(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk]),
        REMOTE_ADDR="203.0.113.9",
    )

    assert response.status_code == 200
    assert plaintext in codes
    assert plaintext in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    log = CodeAccessLog.objects.get()
    assert (log.code, log.actor, log.action, log.ip_address) == (
        stored,
        custodian,
        CodeAccessLog.Action.REVEALED_BY_STAFF,
        "203.0.113.9",
    )


def test_card_code_reveal_is_allowed_for_superuser(admin_client, stocked):
    stored = CardCode.objects.first()

    response = admin_client.post(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk])
    )

    assert response.status_code == 200
    assert CodeAccessLog.objects.count() == 1


# --- export ---------------------------------------------------------------------


def _export(client, codes):
    return client.post(
        reverse("admin:fulfillment_cardcode_changelist"),
        {"action": "export_codes_csv", "_selected_action": [c.pk for c in codes]},
    )


def test_card_code_export_returns_csv_and_logs_each_code(
    custodian_client, custodian, stocked
):
    codes, _ = stocked
    selected = list(CardCode.objects.order_by("pk")[:4])

    response = _export(custodian_client, selected)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 5
    assert {row[2] for row in rows[1:]} <= set(codes)
    assert {row[1] for row in rows[1:]} == {c.hint for c in selected}
    logs = CodeAccessLog.objects.filter(
        action=CodeAccessLog.Action.EXPORTED, actor=custodian
    )
    assert sorted(log.code_id for log in logs) == [c.pk for c in selected]
    assert CodeAccessLog.objects.count() == 4


def test_card_code_export_is_not_offered_to_operator(operator_client, stocked):
    codes, _ = stocked

    changelist = operator_client.get(reverse("admin:fulfillment_cardcode_changelist"))
    response = _export(operator_client, list(CardCode.objects.all()))

    assert "export_codes_csv" not in changelist.content.decode()
    assert not response.get("Content-Type", "").startswith("text/csv")
    assert all(code not in response.content.decode() for code in codes)
    assert not CodeAccessLog.objects.exists()


# --- access log -----------------------------------------------------------------


def test_code_access_log_changelist_forbidden_for_operator(operator_client):
    response = operator_client.get(
        reverse("admin:fulfillment_codeaccesslog_changelist")
    )

    assert response.status_code == 403


def test_code_access_log_changelist_lists_reveals_for_custodian(
    custodian_client, stocked
):
    stored = CardCode.objects.first()
    custodian_client.post(
        reverse("admin:fulfillment_cardcode_reveal", args=[stored.pk])
    )

    response = custodian_client.get(
        reverse("admin:fulfillment_codeaccesslog_changelist")
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert stored.hint in html
    assert "员工查看" in html
    assert "codeaccesslog/add/" not in html
