from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from fulfillment import vault
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services import (
    card_code_reveal,
    card_codes_expire,
    vault_rotate,
)
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

pytestmark = pytest.mark.django_db


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
