"""card_codes_import's COPY path: binary rows, parts streamed as sealed, the key check."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from catalog.models import Sku
from fulfillment import vault
from fulfillment.codefile import MalformedFileError
from fulfillment.models import CardCode, CodeBatch
from fulfillment.services import card_codes_add, code_import
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes
from tests.fulfillment.test_code_import import sealing_fails_and_nothing_is_left

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_parts(monkeypatch):
    """Chunks of 50 codes sealed 7 at a time: a COPY reads many parts."""
    monkeypatch.setattr(code_import, "IMPORT_CHUNK_CODES", 50)
    monkeypatch.setattr(code_import, "SEAL_PART_CODES", 7)


def _opened_in_id_order(batch: CodeBatch) -> list[str]:
    return [
        vault.open_sealed(ciphertext=c.ciphertext, key_id=c.key_id)
        for c in CardCode.objects.filter(batch=batch).order_by("id")
    ]


def _batch_key_refuses_at_once(sku: Sku) -> bool:
    """Whether a row naming another SKU's batch is refused by its INSERT (the key
    checked immediately) rather than left for COMMIT (deferred)."""
    other = CodeBatch.objects.create(sku=SkuFactory())
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO fulfillment_cardcode (sku_id, batch_id, ciphertext, key_id, "
                "fingerprint, hint, status, created_at) "
                "VALUES (%s, %s, 'x', 'k', md5(random()::text), 'h', 'available', now())",
                [sku.id, other.id],
            )
            raise _Undo
    except IntegrityError:
        return True
    except _Undo:
        return False


class _Undo(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_card_codes_import_keeps_file_order_across_sealing_parts(small_parts, workers):
    sku = SkuFactory()
    codes = make_codes(300)

    result = stock_codes(sku, codes, workers=workers)

    assert result.imported == 300
    assert _opened_in_id_order(result.batch) == codes


@pytest.mark.parametrize("workers", [0, 2])
def test_card_codes_import_stores_non_ascii_and_backslash_codes_exactly(workers):
    sku = SkuFactory()
    codes = ["卡密ABCD1234", "AB\\CD\\EF\\12", "ÄÖÜ12345ß", "\\\\\\\\", *make_codes(3)]
    before = timezone.now()

    result = stock_codes(sku, codes, workers=workers)

    stored = list(CardCode.objects.filter(batch=result.batch).order_by("id"))
    assert _opened_in_id_order(result.batch) == codes
    assert [c.hint for c in stored] == [vault.mask(code) for code in codes]
    assert all(before <= c.created_at <= timezone.now() for c in stored)
    assert all(c.expires_at is None and c.order_line_id is None for c in stored)


@pytest.mark.parametrize("workers", [1, 2])
def test_card_codes_import_raises_the_sealing_error_met_during_a_copy(
    small_parts, monkeypatch, workers
):
    # The fourth part: its chunk's COPY is already reading the parts before it.
    sealing_fails_and_nothing_is_left(
        monkeypatch, workers=workers, fails=lambda n: n == 4
    )


def test_card_codes_import_checks_the_batch_key_as_each_copy_ends():
    sku = SkuFactory()
    seen = []

    def probe(execute, sql, params, many, context):
        if "= ANY(" in sql and not seen:  # inside the import, before the COPYs
            seen.append(_batch_key_refuses_at_once(sku))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(probe):
        stock_codes(sku, 10)

    assert seen == [True]
    assert not _batch_key_refuses_at_once(sku)  # deferred again once it is done


def test_card_codes_import_leaves_the_batch_key_deferred_when_nested_and_failed():
    sku = SkuFactory()

    with transaction.atomic():
        card_codes_add(
            sku=sku,
            codes=make_codes(5),
            source="supplier",
            cost_price=None,
            expires_at=None,
            note="",
        )
        after_success = _batch_key_refuses_at_once(sku)
        with pytest.raises(MalformedFileError):
            stock_codes(sku, [*make_codes(5), "BAD\x01LINE"])
        after_failure = _batch_key_refuses_at_once(sku)

    assert (after_success, after_failure) == (False, False)
    assert CardCode.objects.filter(sku=sku).count() == 5
