"""The card-code vault: the ONLY module that sees vault keys or plaintext codes.

Scheme (docs/VAULT.md): each key in VAULT_KEYS is a Fernet key (AES-128-CBC +
HMAC-SHA256, from `cryptography`). A code is encrypted under the newest key and
stored with that key's id (first 8 hex chars of SHA-256 of the key), so decryption
goes straight to the right key and rotation finds stale rows by key id. The
fingerprint is HMAC-SHA256(VAULT_FINGERPRINT_KEY, code): equal codes collide,
which a unique constraint turns into duplicate refusal without decrypting.

Supplier signing secrets are sealed the same way (`seal_secret`/`open_secret`):
same keyring, same rotation, no fingerprint (they are never de-duplicated).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.lib.errors import DomainError


class VaultError(DomainError):
    code = "vault_error"


@dataclass(frozen=True)
class Sealed:
    ciphertext: str
    key_id: str
    fingerprint: str
    hint: str


@dataclass(frozen=True)
class _Keyring:
    newest_id: str
    fernets: dict[str, Fernet]
    fingerprint_key: bytes


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@lru_cache(maxsize=4)
def _keyring_for(keys: tuple[str, ...], fingerprint_key: str) -> _Keyring:
    if not keys:
        raise ImproperlyConfigured("VAULT_KEYS is empty")
    if not fingerprint_key:
        raise ImproperlyConfigured("VAULT_FINGERPRINT_KEY is empty")
    try:
        fernets = {_key_id(k): Fernet(k.encode()) for k in keys}
    except ValueError:
        # Never echo the key itself.
        raise ImproperlyConfigured(
            "VAULT_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)"
        ) from None
    return _Keyring(
        newest_id=_key_id(keys[0]),
        fernets=fernets,
        fingerprint_key=fingerprint_key.encode(),
    )


def _keyring() -> _Keyring:
    # Keyed on the settings' values so override_settings in tests takes effect.
    return _keyring_for(tuple(settings.VAULT_KEYS), settings.VAULT_FINGERPRINT_KEY)


def newest_key_id() -> str:
    return _keyring().newest_id


def fingerprint(code: str) -> str:
    return hmac.new(
        _keyring().fingerprint_key, code.encode(), hashlib.sha256
    ).hexdigest()


def fingerprints(codes: Iterable[str]) -> list[str]:
    """`fingerprint` of many codes: one keyring look-up, the keyed HMAC state copied."""
    keyed = hmac.new(_keyring().fingerprint_key, digestmod=hashlib.sha256)
    out = []
    for code in codes:
        mac = keyed.copy()
        mac.update(code.encode())
        out.append(mac.hexdigest())
    return out


def encrypt_many(codes: Iterable[str]) -> tuple[str, list[str]]:
    """Encrypt many codes under the newest key; returns (key_id, ciphertexts).

    The import's sealing processes call this: the same Fernet tokens as `seal`.
    """
    ring = _keyring()
    encrypt = ring.fernets[ring.newest_id].encrypt
    return ring.newest_id, [encrypt(code.encode()).decode() for code in codes]


def mask(code: str) -> str:
    """`AB****9Z`: the first and last two characters, never more than a third of the code."""
    if len(code) <= 6:
        return "*" * len(code)
    return f"{code[:2]}{'*' * 4}{code[-2:]}"


def seal(code: str, *, known_fingerprint: str | None = None) -> Sealed:
    """Encrypt under the newest key; `known_fingerprint` skips recomputing it."""
    ring = _keyring()
    token = ring.fernets[ring.newest_id].encrypt(code.encode())
    return Sealed(
        ciphertext=token.decode(),
        key_id=ring.newest_id,
        fingerprint=known_fingerprint or fingerprint(code),
        hint=mask(code),
    )


def open_sealed(*, ciphertext: str, key_id: str) -> str:
    """Decrypt one code. Raises VaultError (never with plaintext or key material)."""
    fernet = _keyring().fernets.get(key_id)
    if fernet is None:
        raise VaultError(f"vault key {key_id} is no longer configured")
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise VaultError(f"ciphertext does not verify under key {key_id}") from None


def reseal(*, ciphertext: str, key_id: str) -> tuple[str, str]:
    """Re-encrypt under the newest key; returns (ciphertext, key_id)."""
    ring = _keyring()
    plaintext = open_sealed(ciphertext=ciphertext, key_id=key_id)
    return ring.fernets[ring.newest_id].encrypt(
        plaintext.encode()
    ).decode(), ring.newest_id


def seal_blob(data: bytes) -> bytes:
    """Encrypt an uploaded file held between preview and confirm of an admin import."""
    ring = _keyring()
    return ring.newest_id.encode() + b":" + ring.fernets[ring.newest_id].encrypt(data)


def open_blob(blob: bytes) -> bytes:
    key_id, _, token = blob.partition(b":")
    fernet = _keyring().fernets.get(key_id.decode())
    if fernet is None:
        raise VaultError("the uploaded file was sealed with a key that is gone")
    try:
        return fernet.decrypt(token)
    except InvalidToken:
        raise VaultError("the uploaded file does not verify") from None


def seal_secret(text: str) -> tuple[str, str]:
    """Encrypt a credential (a supplier's signing secret); returns (ciphertext, key_id)."""
    ring = _keyring()
    token = ring.fernets[ring.newest_id].encrypt(text.encode())
    return token.decode(), ring.newest_id


def open_secret(*, ciphertext: str, key_id: str) -> str:
    """Decrypt a credential sealed by seal_secret. Raises VaultError (never with key material)."""
    return open_sealed(ciphertext=ciphertext, key_id=key_id)
