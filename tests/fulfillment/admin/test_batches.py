"""The batch admin: code import (preview, sealed cache, confirm), the batch report."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import openpyxl
from django.contrib.admin.models import LogEntry
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import Client
from django.urls import reverse

from catalog.models import Sku
from fulfillment import vault
from fulfillment.admin.batches import IMPORT_CACHE_KEY, CodeBatchResource
from fulfillment.models import CardCode, CodeBatch
from orders.services import order_place
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

IMPORT_URL = "admin:fulfillment_codebatch_import"
# Session, user, two permission lookups, the page, its count, the platform filter's
# choices: a fixed number however many batches are listed (7 when measured).
CODEBATCH_CHANGELIST_MAX_QUERIES = 9


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _preview(client, sku, name, content, **fields):
    data = {"sku": sku.pk, "file": _upload(name, content), **fields}
    return client.post(reverse(IMPORT_URL), data)


def _token(response) -> str:
    match = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert match, "the preview offers no confirm button"
    return match.group(1)


def _confirm(client, response):
    return client.post(reverse(IMPORT_URL), {"token": _token(response)})


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- import -------------------------------------------------------------------


def test_code_batch_changelist_links_to_import_for_operator(operator_client):
    response = operator_client.get(reverse("admin:fulfillment_codebatch_changelist"))

    assert response.status_code == 200
    assert reverse(IMPORT_URL) in response.content.decode()


def test_code_import_form_renders_card_code_skus_only(operator_client, sku):
    topup = SkuFactory(code="TX-TOPUP", delivery=Sku.Delivery.DIRECT_TOPUP)

    response = operator_client.get(reverse(IMPORT_URL))

    assert response.status_code == 200
    assert f'value="{sku.pk}"' in response.content.decode()
    assert f'value="{topup.pk}"' not in response.content.decode()


def test_code_import_preview_shows_masked_hints_and_no_plaintext(operator_client, sku):
    codes = make_codes(5)

    response = _preview(operator_client, sku, "codes.txt", "\n".join(codes).encode())

    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="count-imported">5<' in html
    for code in codes:
        assert code not in html
        assert vault.mask(code) in html
    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


def test_code_import_confirm_creates_batch_with_counts(operator_client, operator, sku):
    codes = make_codes(4)
    preview = _preview(
        operator_client,
        sku,
        "codes.txt",
        "\n".join([*codes, "xy", codes[0]]).encode(),
        source="供应商甲",
        cost_price="20.50",
        expires="2099-12-31",
        note="双十一补货",
    )

    response = _confirm(operator_client, preview)

    batch = CodeBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:fulfillment_codebatch_change", args=[batch.pk]
    )
    assert (batch.imported_count, batch.duplicate_count, batch.rejected_count) == (
        4,
        1,
        1,
    )
    assert (batch.source, batch.cost_price, batch.note, batch.created_by) == (
        "供应商甲",
        Decimal("20.50"),
        "双十一补货",
        operator,
    )
    assert batch.expires_at.date().isoformat() in ("2099-12-31", "2100-01-01")
    assert CardCode.objects.filter(batch=batch).count() == 4
    assert LogEntry.objects.get().object_id == str(batch.pk)


def test_code_import_preview_lists_rejected_lines_with_reasons(operator_client, sku):
    content = "\n".join(["AAAA1111", "ab", "BBBB 2222", "CCCC3333"]).encode()

    response = _preview(operator_client, sku, "codes.txt", content)

    html = response.content.decode()
    assert 'class="count-rejected">2<' in html
    assert "<td>2</td><td>卡密太短" in html
    assert "<td>3</td><td>卡密中间含有空白字符" in html


def test_code_import_caches_the_upload_only_sealed(operator_client, sku):
    codes = make_codes(3)
    content = "\n".join(codes).encode()

    response = _preview(operator_client, sku, "codes.txt", content)

    entry = cache.get(IMPORT_CACHE_KEY.format(token=_token(response)))
    assert all(code.encode() not in entry["blob"] for code in codes)
    assert all(code not in repr(entry) for code in codes)
    assert vault.open_blob(entry["blob"]) == content


def test_code_import_shows_line_error_and_imports_nothing_when_code_column_missing(
    operator_client, sku
):
    content = b"serial,pin\nAAAA1111,1234\n"

    response = _preview(operator_client, sku, "codes.csv", content)

    html = response.content.decode()
    assert response.status_code == 200
    assert "第 1 行：缺少 code 列" in html
    assert 'name="token"' not in html
    assert not CodeBatch.objects.exists()


def test_code_import_shows_line_error_and_imports_nothing_when_csv_row_ragged(
    operator_client, sku
):
    content = b"code,note\nAAAA1111,a\nBBBB2222,b,extra\nCCCC3333,c\n"

    response = _preview(operator_client, sku, "codes.csv", content)

    assert "第 3 行：应有 2 列，实际 3 列" in response.content.decode()
    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


def test_code_import_refuses_unsupported_file_type(operator_client, sku):
    response = _preview(operator_client, sku, "codes.pdf", b"AAAA1111\n")

    assert "不支持的文件类型 .pdf" in response.content.decode()
    assert not CodeBatch.objects.exists()


def test_code_import_imports_csv(operator_client, sku):
    codes = make_codes(3)
    content = ("code,note\n" + "".join(f"{c},x\n" for c in codes)).encode()

    _confirm(operator_client, _preview(operator_client, sku, "codes.csv", content))

    assert CodeBatch.objects.get().imported_count == 3


def test_code_import_imports_xlsx(operator_client, sku):
    codes = make_codes(3)
    content = _xlsx([["note", "code"], *[["x", c] for c in codes], ["y", 12345678]])

    preview = _preview(operator_client, sku, "codes.xlsx", content)
    _confirm(operator_client, preview)

    assert 'class="count-imported">4<' in preview.content.decode()
    batch = CodeBatch.objects.get()
    assert (batch.imported_count, batch.file_name) == (4, "codes.xlsx")


def test_code_import_counts_codes_already_in_the_vault_as_duplicates(
    operator_client, sku
):
    codes = make_codes(4)
    stock_codes(sku, codes[:2])

    preview = _preview(operator_client, sku, "codes.txt", "\n".join(codes).encode())
    _confirm(operator_client, preview)

    assert 'class="count-duplicates">2<' in preview.content.decode()
    batch = CodeBatch.objects.latest("id")
    assert (batch.imported_count, batch.duplicate_count) == (2, 2)


def test_code_import_offers_no_confirm_when_every_code_is_a_duplicate(
    operator_client, sku
):
    codes = make_codes(2)
    stock_codes(sku, codes)

    response = _preview(operator_client, sku, "codes.txt", "\n".join(codes).encode())

    assert 'name="token"' not in response.content.decode()
    assert CodeBatch.objects.count() == 1


def test_code_import_confirm_imports_once_when_token_reused(operator_client, sku):
    preview = _preview(
        operator_client, sku, "codes.txt", "\n".join(make_codes(2)).encode()
    )

    first = _confirm(operator_client, preview)
    second = _confirm(operator_client, preview)

    assert first.status_code == 302
    assert second["Location"] == reverse(IMPORT_URL)
    assert CodeBatch.objects.count() == 1


def test_code_import_confirm_shows_error_and_imports_nothing_when_sku_changed(
    operator_client, sku
):
    preview = _preview(operator_client, sku, "codes.txt", b"AAAA1111\n")
    Sku.objects.filter(pk=sku.pk).update(delivery=Sku.Delivery.DIRECT_TOPUP)

    response = _confirm(operator_client, preview)

    assert response.status_code == 200
    assert "不是卡密类商品" in response.content.decode()
    assert not CodeBatch.objects.exists()


def test_code_import_confirm_refuses_token_of_another_user(
    client, operator, custodian, sku
):
    client.force_login(operator)
    preview = _preview(client, sku, "codes.txt", "\n".join(make_codes(2)).encode())
    client.force_login(custodian)

    response = _confirm(client, preview)

    assert response["Location"] == reverse(IMPORT_URL)
    assert not CodeBatch.objects.exists()


def test_code_import_shows_service_error_when_expiry_in_past(operator_client, sku):
    response = _preview(
        operator_client, sku, "codes.txt", b"AAAA1111\n", expires="2000-01-01"
    )

    assert "最后有效日期不能早于今天" in response.content.decode()
    assert not CodeBatch.objects.exists()


def test_code_import_forbidden_without_add_codebatch(client, sku):
    viewer = UserFactory(username="viewer", is_staff=True)
    client.force_login(viewer)

    get = client.get(reverse(IMPORT_URL))
    post = _preview(client, sku, "codes.txt", b"AAAA1111\n")

    assert (get.status_code, post.status_code) == (403, 403)
    assert not CodeBatch.objects.exists()


def test_code_import_rejects_post_without_csrf_token(operator, sku):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    response = _preview(client, sku, "codes.txt", b"AAAA1111\n")

    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_code_import_never_spools_the_upload_to_disk(
    operator_client, sku, settings, monkeypatch
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16  # the default chain would use a temp file
    spooled = []
    monkeypatch.setattr(
        TemporaryFileUploadHandler, "new_file", lambda *a, **kw: spooled.append(a)
    )

    response = _preview(
        operator_client, sku, "codes.txt", "\n".join(make_codes(50)).encode()
    )

    assert spooled == []
    assert 'class="count-imported">50<' in response.content.decode()


# --- batches --------------------------------------------------------------------


def test_code_batch_changelist_shows_stock_counts(operator_client, alice, sku):
    stock_codes(sku, 5, note="first batch")
    order_place(user=alice, sku_code=sku.code, quantity=2)

    response = operator_client.get(reverse("admin:fulfillment_codebatch_changelist"))

    html = response.content.decode()
    assert re.search(r'class="field-available">3<', html)
    assert re.search(r'class="field-reserved">2<', html)
    assert re.search(r'class="field-sold">0<', html)


def test_code_batch_changelist_query_count_is_bounded(
    operator_client, sku, django_assert_max_num_queries
):
    for _ in range(10):
        stock_codes(sku, 3)

    with django_assert_max_num_queries(CODEBATCH_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(
            reverse("admin:fulfillment_codebatch_changelist")
        )

    assert response.status_code == 200


def test_code_batch_change_page_keeps_money_and_counts_read_only(operator_client, sku):
    batch = stock_codes(sku, 2, cost_price=Decimal("9.90")).batch

    response = operator_client.get(
        reverse("admin:fulfillment_codebatch_change", args=[batch.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="cost_price"' not in html
    assert 'name="imported_count"' not in html


def test_code_batch_delete_is_forbidden_even_for_superuser(admin_client, sku):
    batch = stock_codes(sku, 1).batch

    response = admin_client.get(
        reverse("admin:fulfillment_codebatch_delete", args=[batch.pk])
    )

    assert response.status_code == 403


def test_code_batch_export_reports_counts_and_no_codes(operator_client, sku):
    codes = make_codes(3)
    batch = stock_codes(
        sku, codes, source="供应商甲", cost_price=Decimal("20.00")
    ).batch

    response = operator_client.post(
        reverse("admin:fulfillment_codebatch_export"),
        {"format": "0", "resource": "0", **_all_export_fields()},
    )

    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert response.status_code == 200
    assert rows[1][:4] == [str(batch.pk), "TX-VIP-MONTH", "供应商甲", "20.00"]
    assert all(code not in text for code in codes)
    assert all(vault.mask(code) not in text for code in codes)


def test_code_batch_export_form_renders_for_operator(operator_client):
    response = operator_client.get(reverse("admin:fulfillment_codebatch_export"))

    assert response.status_code == 200


def test_code_batch_export_forbidden_without_view_codebatch(client, sku):
    stock_codes(sku, 1)
    client.force_login(UserFactory(username="clerk", is_staff=True))

    response = client.get(reverse("admin:fulfillment_codebatch_export"))

    assert response.status_code == 403


def _all_export_fields() -> dict[str, str]:
    names = CodeBatchResource._meta.fields
    return {f"codebatchresource_{name}": "on" for name in names}
