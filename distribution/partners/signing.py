"""The partner API's signatures (SPEC §4.4): pure functions, no ORM, no settings.

Requests: lowercase hex HMAC-SHA256(secret,
`METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256HEX(BODY)`), PATH with its query
string, BODY the exact bytes ("" for GET). Webhooks: lowercase hex
HMAC-SHA256(secret, `TIMESTAMP\\nBODY`). Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_SKEW_SECONDS = 300  # a request's X-Timestamp may be this far from our clock
NONCE_WINDOW_SECONDS = 600  # a nonce is unique per key within this window


def request_message(
    *, method: str, path: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """What a request's signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{digest}".encode()


def request_sign(
    *, secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """The X-Signature a partner sends for this request."""
    message = request_message(
        method=method, path=path, timestamp=timestamp, nonce=nonce, body=body
    )
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison; a non-ASCII header never matches (and never raises)."""
    try:
        return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))
    except UnicodeEncodeError:
        return False


def timestamp_fresh(*, timestamp: str, now: float) -> bool:
    """Whether X-Timestamp is unix seconds within ±TIMESTAMP_SKEW_SECONDS of `now`."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now) <= TIMESTAMP_SKEW_SECONDS


def webhook_sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The X-Signature of a webhook POST."""
    message = timestamp.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
