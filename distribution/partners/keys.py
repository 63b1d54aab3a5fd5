"""API keys and request authentication (SPEC §4.4).

A key is a public id (`X-Api-Key`) and a secret. The secret is sealed by the
card-code vault (fulfillment/vault.py `seal_secret`), never hashed: checking an
HMAC needs the secret itself, so a hash would have to be the secret's
equivalent. A database dump alone therefore yields ciphertext, useless without
VAULT_KEYS (docs/DECISIONS.md). The plaintext is returned once, at creation.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from config.lib.db import row_insert_once
from distribution.models import ApiKey, ApiNonce, PartnerAccount, Reseller
from distribution.partners import signing
from distribution.partners.errors import ApiAuthError, PartnerApiError
from fulfillment import vault

NONCE_PATTERN = re.compile(r"^[\x21-\x7e]{1,64}$")  # visible ASCII, 1 to 64 characters
NONCE_KEEP = dt.timedelta(minutes=15)  # longer than the 10-minute window
LAST_USED_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often

ERR_HEADERS = "X-Api-Key, X-Timestamp, X-Nonce and X-Signature are required"
ERR_TIMESTAMP = "X-Timestamp must be unix seconds within 300 s of the server's clock"
ERR_NONCE_FORMAT = "X-Nonce must be 1 to 64 visible ASCII characters"
ERR_KEY = "unknown or revoked API key"
ERR_SIGNATURE = "signature does not match"
ERR_REPLAY = "X-Nonce was already used with this key"
ERR_NUL = "the request body holds a NUL character"


def partner_account_ensure(*, reseller: Reseller) -> PartnerAccount:
    """The reseller's partner account, created (API enabled) when it has none.

    Idempotent.
    """
    account, _created = PartnerAccount.objects.get_or_create(reseller=reseller)
    return account


def api_key_create(
    *, account: PartnerAccount, actor: User | None = None, label: str = ""
) -> tuple[ApiKey, str]:
    """Issue a key; returns it with its secret, which is never shown again."""
    secret = secrets.token_urlsafe(32)
    ciphertext, key_id = vault.seal_secret(secret)
    key = ApiKey(
        account=account,
        secret_ciphertext=ciphertext,
        secret_key_id=key_id,
        label=label[:60],
        created_by=actor,
    )
    key.full_clean(exclude=["secret_ciphertext"])
    key.save()
    return key, secret


def api_key_revoke(*, api_key_id: int, now: dt.datetime | None = None) -> bool:
    """Revoke a key at once; False when it was revoked already.

    Idempotent: one conditional UPDATE (revoked_at IS NULL).
    """
    now = now or timezone.now()
    return bool(
        ApiKey.objects.filter(pk=api_key_id, revoked_at__isnull=True).update(
            revoked_at=now
        )
    )


def api_key_secret(key: ApiKey) -> str:
    """The key's secret, opened by the vault (for signing, never for display)."""
    return vault.open_secret(ciphertext=key.secret_ciphertext, key_id=key.secret_key_id)


def request_authenticate(
    *,
    key_id: str,
    timestamp: str,
    nonce: str,
    signature: str,
    method: str,
    path: str,
    body: bytes,
    now: dt.datetime | None = None,
) -> ApiKey:
    """Check a signed request; returns its key with account, reseller, user and tier.

    1. Every header present; the timestamp within ±300 s.
    2. The key exists, is not revoked, its account is enabled and its reseller
       approved.
    3. The signature matches (constant time).
    4. The nonce is new for this key: a unique row (ON CONFLICT DO NOTHING), so
       two copies of one request racing each other cannot both pass.
    Checked in this order so that only the key's holder can use up a nonce.
    Raises: ApiAuthError (401); PartnerApiError (400) for a body holding NUL.
    """
    now = now or timezone.now()
    if not (key_id and timestamp and nonce and signature):
        raise ApiAuthError(ERR_HEADERS, code="missing_signature")
    if not signing.timestamp_fresh(timestamp=timestamp, now=now.timestamp()):
        raise ApiAuthError(ERR_TIMESTAMP, code="bad_timestamp")
    if not NONCE_PATTERN.match(nonce):
        raise ApiAuthError(ERR_NONCE_FORMAT, code="bad_nonce")
    key = _key_get(key_id)
    if key is None:
        raise ApiAuthError(ERR_KEY, code="bad_key")
    secret = api_key_secret(key)
    if not _signature_ok(
        secret=secret,
        signature=signature,
        method=method,
        path=path,
        timestamp=timestamp,
        nonce=nonce,
        body=body,
    ):
        raise ApiAuthError(ERR_SIGNATURE, code="bad_signature")
    if not row_insert_once(ApiNonce(api_key=key, nonce=nonce, created_at=now)):
        raise ApiAuthError(ERR_REPLAY, code="replayed_nonce")
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def _key_get(key_id: str) -> ApiKey | None:
    if not (key_id.isascii() and len(key_id) <= 32):
        return None
    return (
        ApiKey.objects.select_related(
            "account__reseller__user", "account__reseller__tier"
        )
        .filter(
            key_id=key_id,
            revoked_at__isnull=True,
            account__is_enabled=True,
            account__reseller__status=Reseller.Status.APPROVED,
        )
        .first()
    )


def _signature_ok(
    *,
    secret: str,
    signature: str,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> bool:
    """Whether the signature covers this request as the partner sent it.

    config/lib/nul.py turns every `\\u0000` of a JSON body into `\\ufffd`
    before a CSRF-exempt view reads it. A body that only matches with them
    turned back held NUL: that is invalid input (400), not a forgery (401).
    """

    def matches(content: bytes) -> bool:
        expected = signing.request_sign(
            secret=secret,
            method=method,
            path=path,
            timestamp=timestamp,
            nonce=nonce,
            body=content,
        )
        return signing.signature_matches(expected, signature)

    if matches(body):
        return True
    if b"\\ufffd" in body and matches(body.replace(b"\\ufffd", b"\\u0000")):
        raise PartnerApiError(ERR_NUL, code="invalid")
    return False


def api_nonces_purge(*, now: dt.datetime | None = None) -> int:
    """Delete nonces older than any request could still carry; returns how many."""
    now = now or timezone.now()
    deleted, _rows = ApiNonce.objects.filter(created_at__lt=now - NONCE_KEEP).delete()
    return deleted


def api_keys_active_for(*, account_id: int) -> list[ApiKey]:
    """An account's keys that still work, newest first."""
    return list(
        ApiKey.objects.filter(Q(account_id=account_id) & Q(revoked_at__isnull=True))
    )
