"""The generic recharge-supplier protocol's wire rules, shared by adapter and simulator.

Pure functions, no Django: the canonical string, HMAC-SHA256 signatures over it,
and the AES-256-GCM envelope that card secrets travel in. The contract is
../shared/docs/supplier-protocol.md; nothing here is hand-rolled crypto beyond
composing the standard primitives the protocol names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Error codes (supplier-protocol.md, "Error codes").
OK = 0
BAD_SIGNATURE = 1001
TIMESTAMP_OUT_OF_WINDOW = 1002
NONCE_REUSED = 1003
APP_DISABLED = 1004
INVALID_PARAMETER = 1101
UNKNOWN_PRODUCT = 2001
PRODUCT_OFF_SHELF = 2002
OUT_OF_STOCK = 2003
CHARGE_ACCOUNT_INVALID = 2004
INSUFFICIENT_BALANCE = 3001
ORDER_NO_REUSED = 3002
ORDER_NOT_FOUND = 3003
RATE_LIMITED = 4290
SYSTEM_BUSY = 5000

TIMESTAMP_WINDOW_SECONDS = 300
CUSTOMER_ORDER_NO_MAX = 50

# Order states; `success` and `failed` are terminal and never change.
UNTREATED = "untreated"
PROCESSING = "processing"
SUCCESS = "success"
FAILED = "failed"
TERMINAL_STATES = frozenset({SUCCESS, FAILED})

_GCM_NONCE_BYTES = 12


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    return str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def canonical_string(fields: dict[str, Any]) -> str:
    """Every top-level field but `sign` and empty values, sorted, `name=value` joined by `&`."""
    return "&".join(
        f"{name}={_value(fields[name])}"
        for name in sorted(fields)
        if name != "sign" and not _is_empty(fields[name])
    )


def sign(fields: dict[str, Any], secret: str) -> str:
    """Lowercase hex HMAC-SHA256(secret, canonical string), UTF-8."""
    return hmac.new(
        secret.encode(), canonical_string(fields).encode(), hashlib.sha256
    ).hexdigest()


def verify(fields: dict[str, Any], secret: str) -> bool:
    """Whether `fields["sign"]` is the signature of the other fields (constant time)."""
    given = fields.get("sign")
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given, sign(fields, secret))


def card_key(secret: str) -> bytes:
    """The AES-256-GCM key card secrets are sealed under: SHA-256(app secret)."""
    return hashlib.sha256(secret.encode()).digest()


def card_secret_encrypt(plaintext: str, secret: str) -> str:
    """base64(nonce ‖ AES-256-GCM ciphertext): what the supplier puts in `cards[].secret`."""
    nonce = os.urandom(_GCM_NONCE_BYTES)
    sealed = AESGCM(card_key(secret)).encrypt(nonce, plaintext.encode(), None)
    return base64.b64encode(nonce + sealed).decode("ascii")


def card_secret_decrypt(envelope: str, secret: str) -> str:
    """Open a card secret. Raises ValueError on anything corrupt (never echoes the input)."""
    try:
        raw = base64.b64decode(envelope, validate=True)
        if len(raw) <= _GCM_NONCE_BYTES:
            raise ValueError("card secret too short")
        nonce, sealed = raw[:_GCM_NONCE_BYTES], raw[_GCM_NONCE_BYTES:]
        return AESGCM(card_key(secret)).decrypt(nonce, sealed, None).decode()
    except Exception as exc:  # binascii.Error, InvalidTag, UnicodeDecodeError
        raise ValueError("corrupt card secret") from exc
