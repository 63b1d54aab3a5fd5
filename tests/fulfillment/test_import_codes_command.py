"""manage.py import_codes: the import from the command line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from fulfillment.models import CardCode, CodeBatch
from tests.factories.catalog import SkuFactory

pytestmark = pytest.mark.django_db


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
        "--workers",
        "2",
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
        (["--workers", "-1"], "--workers"),
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
