"""card_codes_import: streamed, sealed in processes or inline, COPYed."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import Sku
from fulfillment import vault
from fulfillment.codefile import MalformedFileError
from fulfillment.models import CardCode, CodeBatch
from fulfillment.services import CodeImportError, card_codes_import, code_import
from fulfillment.soldout import sold_out_known, sold_out_note
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

pytestmark = pytest.mark.django_db

LOGGER = "fulfillment.services.code_import"


def _vault_of(sku: Sku) -> dict[str, str]:
    """fingerprint -> decrypted code, for every code the SKU holds."""
    return {
        c.fingerprint: vault.open_sealed(ciphertext=c.ciphertext, key_id=c.key_id)
        for c in CardCode.objects.filter(sku=sku)
    }


def _logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 50 codes, so a few hundred codes cross many chunks and the pool."""
    monkeypatch.setattr(code_import, "IMPORT_CHUNK_CODES", 50)


def test_card_codes_import_encrypts_counts_and_records_batch(staff):
    sku = SkuFactory()
    codes = make_codes(5)

    result = card_codes_import(
        sku=sku,
        content="\n".join(codes).encode(),
        file_name="a.txt",
        actor=staff,
        source="supplier A",
        cost_price=Decimal("20.00"),
        note="first",
    )

    batch = result.batch
    assert (result.imported, result.duplicates, result.rejected) == (5, 0, 0)
    assert (batch.imported_count, batch.created_by, batch.cost_price) == (
        5,
        staff,
        Decimal("20.00"),
    )
    stored = list(CardCode.objects.filter(batch=batch))
    assert {
        vault.open_sealed(ciphertext=c.ciphertext, key_id=c.key_id) for c in stored
    } == set(codes)
    assert all(c.status == CardCode.Status.AVAILABLE for c in stored)
    assert {c.hint for c in stored} == {vault.mask(code) for code in codes}


def test_card_codes_import_parallel_and_inline_store_the_same_vault(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    codes = make_codes(6000)  # above PARALLEL_MIN_CODES: worth the processes
    content = "\n".join(codes).encode()
    parallel_sku, inline_sku = SkuFactory(), SkuFactory()

    parallel = card_codes_import(
        sku=parallel_sku, content=content, file_name="a.txt", actor=None, workers=2
    )
    inline = card_codes_import(
        sku=inline_sku, content=content, file_name="a.txt", actor=None, workers=0
    )

    assert (parallel.imported, inline.imported) == (6000, 6000)
    assert "sealing processes=2" in _logged(caplog)[0]
    assert "sealing processes=0" in _logged(caplog)[1]
    assert _vault_of(parallel_sku) == _vault_of(inline_sku)
    assert sorted(_vault_of(parallel_sku).values()) == sorted(codes)
    assert CardCode.objects.filter(expires_at__isnull=False).count() == 0


def test_card_codes_import_lowers_the_sold_out_flag_once_committed(
    django_capture_on_commit_callbacks,
):
    sku = SkuFactory()
    sold_out_note(sku.id)

    with django_capture_on_commit_callbacks(execute=True):
        stock_codes(sku, 2)

    assert not sold_out_known(sku.id)


def test_card_codes_import_seals_a_small_file_inline_even_with_workers(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    sku = SkuFactory()

    result = stock_codes(sku, 30, workers=2)

    assert result.imported == 30
    assert "sealing processes=0" in _logged(caplog)[0]


def test_card_codes_import_skips_duplicates_across_chunks_in_file_and_vault(
    small_chunks, caplog
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    sku = SkuFactory()
    known = make_codes(40, prefix="OLD")
    stock_codes(sku, known)
    fresh = make_codes(400)
    # Repeats at every distance: the same chunk, the chunks still being sealed,
    # chunks already inserted; plus codes the vault held before.
    lines = [*fresh, *fresh[::7], fresh[0], *known[::2], fresh[399], *fresh[:60]]
    expires = timezone.now() + dt.timedelta(days=30)

    result = stock_codes(sku, lines, workers=2, expires_at=expires)

    duplicates = len(lines) - 400
    assert (result.imported, result.duplicates) == (400, duplicates)
    assert (result.batch.imported_count, result.batch.duplicate_count) == (
        400,
        duplicates,
    )
    assert "sealing processes=2" in _logged(caplog)[-1]
    assert sorted(_vault_of(sku).values()) == sorted([*known, *fresh])
    assert (
        CardCode.objects.filter(batch=result.batch, expires_at=expires).count() == 400
    )


def test_card_codes_import_skips_known_codes_late_in_a_new_file(small_chunks, caplog):
    caplog.set_level(logging.INFO)
    sku = SkuFactory()
    known = make_codes(40, prefix="OLD")
    stock_codes(sku, known)
    fresh = make_codes(160)

    # The first chunks are all new, so later ones go to the COPY unchecked.
    result = stock_codes(sku, [*fresh[:120], *known, *fresh[120:]], workers=2)

    assert (result.imported, result.duplicates) == (160, 40)
    assert sorted(_vault_of(sku).values()) == sorted([*known, *fresh])
    assert any("already in the vault" in message for message in caplog.messages)


def test_card_codes_import_encrypts_nothing_when_every_code_is_known(
    small_chunks, monkeypatch
):
    sku = SkuFactory()
    codes = make_codes(300)
    stock_codes(sku, codes)
    encrypted = []
    encrypt_many = vault.encrypt_many

    def counting(batch):
        batch = list(batch)
        encrypted.extend(batch)
        return encrypt_many(batch)

    monkeypatch.setattr(vault, "encrypt_many", counting)

    again = stock_codes(sku, codes, workers=0)

    assert (again.imported, again.duplicates) == (0, 300)
    assert encrypted == []


def test_card_codes_import_counts_duplicates_in_file_and_in_vault():
    sku = SkuFactory()
    stock_codes(sku, ["AAAA1111", "BBBB2222"])

    result = stock_codes(sku, ["AAAA1111", "CCCC3333", "CCCC3333", "DDDD4444"])

    assert (result.imported, result.duplicates) == (2, 2)
    assert CardCode.objects.filter(sku=sku).count() == 4


def test_card_codes_import_same_code_allowed_for_another_sku():
    stock_codes(SkuFactory(), ["AAAA1111"])

    result = stock_codes(SkuFactory(), ["AAAA1111"])

    assert result.imported == 1


def test_card_codes_import_imports_nothing_when_file_malformed():
    sku = SkuFactory()

    with pytest.raises(MalformedFileError):
        card_codes_import(
            sku=sku,
            content=b"code\nAAAA1111\nBB\xffBB\n",
            file_name="a.csv",
            actor=None,
        )

    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


def test_card_codes_import_leaves_nothing_when_a_late_line_is_malformed(small_chunks):
    sku = SkuFactory()
    lines = [code.encode() for code in make_codes(300)]
    content = b"\n".join([*lines, b"BROKEN\x00LINE", *lines[:5]])

    with pytest.raises(MalformedFileError) as exc:
        card_codes_import(sku=sku, content=content, file_name="a.txt", actor=None)

    assert exc.value.line == 301  # found after six chunks went in: all rolled back
    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


def sealing_fails_and_nothing_is_left(monkeypatch, *, workers: int, fails) -> None:
    """Import 400 codes with sealing failing on the calls `fails(n)` picks (n from 1):
    the error reaches the caller without a code in it, and nothing is written."""
    sku = SkuFactory()
    calls = []

    def failing(codes):
        calls.append(1)
        if fails(len(calls)):
            raise RuntimeError("sealing failed")
        return vault_encrypt_many(codes)

    vault_encrypt_many = vault.encrypt_many
    monkeypatch.setattr(vault, "encrypt_many", failing)  # the workers fork with it
    codes = make_codes(400)

    with pytest.raises(RuntimeError, match="sealing failed") as exc:
        stock_codes(sku, codes, workers=workers)

    assert not any(code in str(exc.value) for code in codes)
    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_card_codes_import_leaves_nothing_when_sealing_fails(
    small_chunks, monkeypatch, workers
):
    sealing_fails_and_nothing_is_left(
        monkeypatch, workers=workers, fails=lambda n: n > 3
    )


def test_card_codes_import_counts_rejected_lines_and_imports_the_rest():
    result = stock_codes(SkuFactory(), ["AAAA1111", "x", "BBBB2222"])

    assert (result.imported, result.rejected) == (2, 1)
    assert result.rejected_lines[0].line == 2


def test_card_codes_import_dry_run_writes_nothing_and_previews_masked():
    sku = SkuFactory()
    stock_codes(sku, ["AAAA1111"])

    result = card_codes_import(
        sku=sku,
        content=b"AAAA1111\nBBBB2222\n",
        file_name="a.txt",
        actor=None,
        dry_run=True,
    )

    assert (result.imported, result.duplicates) == (1, 1)
    assert result.preview == ["BB****22"]  # only what would be imported
    assert CardCode.objects.filter(sku=sku).count() == 1


def test_card_codes_import_dry_run_counts_as_the_import_then_does(small_chunks):
    sku = SkuFactory()
    stock_codes(sku, ["KNOWN0001"])
    fresh = make_codes(120)
    content = "\n".join(["KNOWN0001", *fresh, *fresh[::3], "zz"]).encode()

    preview = card_codes_import(
        sku=sku, content=content, file_name="a.txt", actor=None, dry_run=True
    )
    batches_after_preview = CodeBatch.objects.count()
    done = card_codes_import(sku=sku, content=content, file_name="a.txt", actor=None)

    assert batches_after_preview == 1  # only the first stock_codes
    assert (preview.imported, preview.duplicates, preview.rejected) == (120, 41, 1)
    assert (done.imported, done.duplicates, done.rejected) == (120, 41, 1)
    assert preview.preview == [vault.mask(code) for code in fresh[:20]]


def test_card_codes_import_refuses_non_card_sku_and_past_expiry():
    with pytest.raises(CodeImportError):
        stock_codes(SkuFactory(delivery=Sku.Delivery.DIRECT_TOPUP), 1)
    with pytest.raises(CodeImportError):
        stock_codes(SkuFactory(), 1, expires_at=timezone.now() - dt.timedelta(days=1))
    assert not CardCode.objects.exists()


def test_card_codes_import_refuses_more_codes_than_allowed():
    sku = SkuFactory()

    with pytest.raises(CodeImportError, match="超过本入口一次 2 个的上限"):
        stock_codes(sku, 3, max_codes=2)

    assert not CardCode.objects.exists()


def test_card_codes_import_refuses_a_long_file_whole_with_its_count(small_chunks):
    sku = SkuFactory()

    with pytest.raises(CodeImportError, match="文件有 260 个卡密"):
        stock_codes(sku, 260, max_codes=200, workers=2)

    assert not CodeBatch.objects.exists()
    assert not CardCode.objects.exists()


def test_card_codes_import_never_logs_or_stores_plaintext(small_chunks, caplog):
    caplog.set_level(logging.DEBUG)
    sku = SkuFactory()
    codes = make_codes(200, prefix="PLAIN")

    result = stock_codes(sku, [*codes, codes[0]], workers=2, note="n")

    rows = [
        *CodeBatch.objects.filter(pk=result.batch.pk).values_list(),
        *CardCode.objects.filter(sku=sku).values_list(),
    ]
    stored = repr(rows)
    assert result.imported == 200
    assert not any(code in stored or code in caplog.text for code in codes)


@pytest.mark.django_db(transaction=True)
def test_card_codes_import_skips_a_code_another_import_commits_meanwhile():
    sku = SkuFactory()
    rival_batch = CodeBatch.objects.create(sku=sku)
    codes = make_codes(10)
    rival = vault.seal(codes[3])

    def commit_rival_after_lookup(execute, sql, params, many, context):
        found = execute(sql, params, many, context)
        if "= ANY(" in sql:  # our look-up saw no codes; now another import adds one
            other = psycopg2.connect(**connection.get_connection_params())
            with other, other.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO fulfillment_cardcode (sku_id, batch_id, ciphertext, "
                    "key_id, fingerprint, hint, status, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, 'available', now())",
                    [
                        sku.id,
                        rival_batch.id,
                        rival.ciphertext,
                        rival.key_id,
                        rival.fingerprint,
                        rival.hint,
                    ],
                )
            other.close()
        return found

    with connection.execute_wrapper(commit_rival_after_lookup):
        result = stock_codes(sku, codes)

    assert (result.imported, result.duplicates) == (9, 1)
    assert sorted(_vault_of(sku).values()) == sorted(codes)
    assert CardCode.objects.get(fingerprint=rival.fingerprint).batch == rival_batch
