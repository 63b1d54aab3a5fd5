"""Startup checks of secrets' shape, for config/settings.py's production guard.

With DEBUG off a weak SECRET_KEY or a malformed vault key stops the process at
settings load, naming the setting, instead of surfacing later: the first
`check --deploy` nobody runs, or the first code import that fails to seal.
Messages describe the problem, never the value.
"""

from __future__ import annotations

import base64
import binascii
import re

# Django's own thresholds (`check --deploy`, security.W009).
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)

# A Fernet key is 32 bytes in url-safe base64 with its padding: 43 characters and "=".
_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")
FERNET_KEY_BYTES = 32


def secret_key_problem(secret_key: str) -> str | None:
    """Why SECRET_KEY is too weak for production, or None when it is fine."""
    if secret_key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"SECRET_KEY starts with {SECRET_KEY_INSECURE_PREFIX!r}"
    if (
        len(secret_key) < SECRET_KEY_MIN_LENGTH
        or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    ):
        return (
            f"SECRET_KEY is too weak ({len(secret_key)} characters, "
            f"{len(set(secret_key))} distinct; at least {SECRET_KEY_MIN_LENGTH} "
            f"with {SECRET_KEY_MIN_UNIQUE_CHARACTERS} distinct are needed)"
        )
    return None


def is_fernet_key(key: str) -> bool:
    """True for a key `cryptography.fernet.Fernet` accepts (as Fernet.generate_key() makes)."""
    if not _FERNET_KEY.fullmatch(key):
        return False
    try:
        return len(base64.urlsafe_b64decode(key)) == FERNET_KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def vault_keys_problem(keys: list[str]) -> str | None:
    """Which VAULT_KEYS entries are not Fernet keys, or None when all are."""
    bad = [
        str(position) for position, key in enumerate(keys, 1) if not is_fernet_key(key)
    ]
    if not bad:
        return None
    return (
        f"VAULT_KEYS entry {', '.join(bad)} of {len(keys)} is not a Fernet key "
        "(44 url-safe base64 characters encoding 32 bytes; make one with "
        '`python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())"`)'
    )
