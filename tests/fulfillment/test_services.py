from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from catalog.models import Sku
from fulfillment import vault
from fulfillment.codefile import MalformedFileError
from fulfillment.models import CardCode, CodeAccessLog, CodeBatch
from fulfillment.services import (
    CodeImportError,
    card_code_reveal,
    card_codes_expire,
    card_codes_import,
    vault_rotate,
)
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

pytestmark = pytest.mark.django_db


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


def test_card_code_reveal_writes_audit_row(staff):
    sku = SkuFactory()
    stock_codes(sku, ["REVEAL123456"])
    code = CardCode.objects.get(sku=sku)

    plaintext = card_code_reveal(
        code=code, actor=staff, action=CodeAccessLog.Action.REVEALED_BY_STAFF
    )

    assert plaintext == "REVEAL123456"
    log = CodeAccessLog.objects.get()
    assert (log.code, log.actor, log.action) == (code, staff, "revealed_by_staff")


def test_card_codes_expire_marks_only_expired_available_codes():
    sku = SkuFactory()
    stock_codes(sku, 2, expires_at=timezone.now() + dt.timedelta(hours=1))
    stock_codes(sku, 3)

    expired = card_codes_expire(now=timezone.now() + dt.timedelta(hours=2))

    assert expired == 2
    assert CardCode.objects.filter(status=CardCode.Status.AVAILABLE).count() == 3


def test_vault_rotate_re_encrypts_in_resumable_chunks(settings):
    sku = SkuFactory()
    codes = make_codes(7)
    stock_codes(sku, codes)
    old_key_id = vault.newest_key_id()
    settings.VAULT_KEYS = [Fernet.generate_key().decode(), *settings.VAULT_KEYS]

    first = vault_rotate(chunk_size=3, max_chunks=1)
    rest = vault_rotate(chunk_size=3)

    assert (first, rest) == (3, 4)
    stored = CardCode.objects.all()
    assert {c.key_id for c in stored} == {vault.newest_key_id()} != {old_key_id}
    assert {
        vault.open_sealed(ciphertext=c.ciphertext, key_id=c.key_id) for c in stored
    } == set(codes)
    assert vault_rotate() == 0


def test_import_codes_command_prints_counts(tmp_path, capsys):
    sku = SkuFactory(code="TX-VIP-MONTH")
    path = tmp_path / "codes.txt"
    path.write_text("AAAA1111\nAAAA1111\nzz\nBBBB2222\n")

    call_command(
        "import_codes",
        "--sku",
        "TX-VIP-MONTH",
        "--file",
        str(path),
        "--batch-note",
        "n1",
        "--cost",
        "12.50",
        "--expires",
        "2099-12-31",
    )

    assert "imported 2, duplicates 1, rejected 1" in capsys.readouterr().out
    batch = CodeBatch.objects.get(sku=sku)
    assert (batch.note, batch.cost_price) == ("n1", Decimal("12.50"))
    assert timezone.localtime(batch.expires_at).date() == dt.date(2100, 1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sku", "NOPE"], "unknown SKU"),
        (["--cost", "abc"], "--cost"),
        (["--expires", "31/12/2099"], "--expires"),
    ],
)
def test_import_codes_command_fails_clearly_on_bad_arguments(tmp_path, args, message):
    SkuFactory(code="TX-VIP-MONTH")
    path = tmp_path / "codes.txt"
    path.write_text("AAAA1111\n")
    base = {"--sku": "TX-VIP-MONTH", "--file": str(path)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))

    with pytest.raises(CommandError, match=message):
        call_command("import_codes", *[x for kv in base.items() for x in kv])

    assert not CardCode.objects.exists()


def test_import_codes_command_fails_and_imports_nothing_on_malformed_file(tmp_path):
    SkuFactory(code="TX-VIP-MONTH")
    path = tmp_path / "codes.csv"
    path.write_text("code,x\nAAAA1111,1\nBBBB2222\n")

    with pytest.raises(CommandError, match="第 3 行"):
        call_command("import_codes", "--sku", "TX-VIP-MONTH", "--file", str(path))

    assert not CardCode.objects.exists()


def test_rotate_vault_key_command_reports_progress(settings, capsys):
    stock_codes(SkuFactory(), 3)
    settings.VAULT_KEYS = [Fernet.generate_key().decode(), *settings.VAULT_KEYS]

    call_command("rotate_vault_key", "--chunk-size", "2")

    assert "re-encrypted 3, remaining under older keys 0" in capsys.readouterr().out


def test_card_code_expire_task_marks_expired_codes():
    from fulfillment.tasks import card_code_expire_task

    sku = SkuFactory()
    stock_codes(sku, 2, expires_at=timezone.now() + dt.timedelta(seconds=1))
    CardCode.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert card_code_expire_task.delay().get() == 2
    assert CardCode.objects.filter(status=CardCode.Status.EXPIRED).count() == 2
