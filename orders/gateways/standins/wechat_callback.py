"""WeChat Pay's callbacks as the stand-in builds them: an encrypted resource in a JSON envelope.

The resource (a transaction, or a refund's result) is encrypted AEAD_AES_256_GCM
with the APIv3 key, its kind as associated data; the caller signs the envelope
as it signs its answers (Wechatpay-* headers).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REFUND_SUMMARY = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}


def rfc3339_now() -> str:
    return dt.datetime.now(tz=dt.UTC).astimezone().isoformat(timespec="seconds")


def envelope(
    resource: dict[str, Any],
    *,
    event_type: str,
    summary: str,
    kind: str,
    apiv3_key: str,
) -> str:
    """The callback body: `resource` encrypted (associated data `kind`), as JSON."""
    nonce = secrets.token_hex(6)  # 12 characters, as WeChat's
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(),
        json.dumps(resource, ensure_ascii=False).encode(),
        kind.encode(),
    )
    body = {
        "id": "EV-" + secrets.token_hex(12),
        "create_time": rfc3339_now(),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": kind,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": kind,
            "nonce": nonce,
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def refund_resource(record: dict[str, Any], *, mchid: str) -> dict[str, Any]:
    """What a refund result callback carries about the refund `record` (a query answer)."""
    return {
        "mchid": mchid,
        "transaction_id": record["transaction_id"],
        "out_trade_no": record["out_trade_no"],
        "refund_id": record["refund_id"],
        "out_refund_no": record["out_refund_no"],
        "refund_status": record["status"],
        "success_time": record.get("success_time", ""),
        "user_received_account": record["user_received_account"],
        "amount": {
            key: record["amount"][key]
            for key in ("total", "refund", "payer_total", "payer_refund")
        },
    }
