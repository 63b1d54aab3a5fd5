from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from fulfillment import vault


def test_seal_round_trips_and_hides_the_code():
    sealed = vault.seal("TXABCDEF123456")

    assert "TXABCDEF123456" not in sealed.ciphertext
    assert sealed.hint == "TX****56"
    assert (
        vault.open_sealed(ciphertext=sealed.ciphertext, key_id=sealed.key_id)
        == "TXABCDEF123456"
    )


def test_fingerprint_is_stable_keyed_and_not_the_code(settings):
    first = vault.fingerprint("CODE-1")

    assert first == vault.fingerprint("CODE-1")
    assert first != vault.fingerprint("CODE-2")
    settings.VAULT_FINGERPRINT_KEY = "another-key"
    assert vault.fingerprint("CODE-1") != first


def test_mask_hides_short_codes_entirely():
    assert vault.mask("ABCDEF") == "******"
    assert vault.mask("ABCDEFG") == "AB****FG"


def test_open_sealed_fails_cleanly_when_key_removed(settings):
    sealed = vault.seal("SECRETCODE99")
    settings.VAULT_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(vault.VaultError) as exc:
        vault.open_sealed(ciphertext=sealed.ciphertext, key_id=sealed.key_id)

    assert "SECRETCODE99" not in str(exc.value)


def test_open_sealed_rejects_tampered_ciphertext():
    sealed = vault.seal("SECRETCODE99")
    tampered = sealed.ciphertext[:-4] + (
        "AAAA" if not sealed.ciphertext.endswith("AAAA") else "BBBB"
    )

    with pytest.raises(vault.VaultError):
        vault.open_sealed(ciphertext=tampered, key_id=sealed.key_id)


def test_reseal_moves_code_to_newest_key(settings):
    old = vault.seal("ROTATEME1234")
    new_key = Fernet.generate_key().decode()
    settings.VAULT_KEYS = [new_key, *settings.VAULT_KEYS]

    ciphertext, key_id = vault.reseal(ciphertext=old.ciphertext, key_id=old.key_id)

    assert key_id == vault.newest_key_id() != old.key_id
    assert vault.open_sealed(ciphertext=ciphertext, key_id=key_id) == "ROTATEME1234"


def test_keyring_refuses_a_non_fernet_key_without_echoing_it(settings):
    settings.VAULT_KEYS = ["not-a-key-at-all"]

    with pytest.raises(ImproperlyConfigured) as exc:
        vault.seal("X1234")

    assert "not-a-key-at-all" not in str(exc.value)


def test_blob_round_trips_and_is_not_plaintext():
    blob = vault.seal_blob(b"CODE1\nCODE2\n")

    assert b"CODE1" not in blob
    assert vault.open_blob(blob) == b"CODE1\nCODE2\n"


@pytest.mark.django_db
def test_a_code_cannot_belong_to_another_skus_batch_nor_to_no_batch():
    """One composite key (fulfillment 0008) stands for the batch's and the SKU's
    foreign keys: a code's SKU is its batch's, checked by the database."""
    from django.db import IntegrityError, connection, transaction

    from fulfillment.models import CardCode
    from tests.factories.catalog import SkuFactory
    from tests.factories.fulfillment import stock_codes

    netflix, spotify = SkuFactory(), SkuFactory()
    stock_codes(netflix, 1)
    code = CardCode.objects.get(sku=netflix)

    def change_and_check(**change: int) -> None:
        with transaction.atomic():
            CardCode.objects.filter(pk=code.pk).update(**change)
            connection.check_constraints()

    for change in ({"sku_id": spotify.pk}, {"batch_id": code.batch_id + 10_000}):
        with pytest.raises(IntegrityError):
            change_and_check(**change)
    code.refresh_from_db()
    assert (code.sku_id, code.batch.sku_id) == (netflix.pk, netflix.pk)
