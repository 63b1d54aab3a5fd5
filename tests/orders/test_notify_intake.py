"""orders/services/notify_intake.py `payload_bound`: what of a notify is stored."""

from __future__ import annotations

import json

import pytest

from orders.services.notify_intake import PAYLOAD_MAX_BYTES, payload_bound

FACE = "😀"  # four bytes in UTF-8


@pytest.mark.parametrize(
    "fields",
    [
        {"out_trade_no": "KQ1", "trade_no": "T1", "total_amount": "30.00"},
        {"a": FACE * 2000, "b": FACE * 2000},  # 16,000 bytes: within the budget
        {"a": "x" * 4000, "b": "y" * 4000, "c": "z" * 4000},  # ASCII, 12,000 bytes
    ],
    ids=["ordinary", "four-byte-characters", "long-ascii"],
)
def test_payload_bound_keeps_a_payload_within_its_budget_whole(fields):
    assert payload_bound(fields) == fields


def test_payload_bound_cuts_four_byte_characters_past_the_budget():
    fields = {f"f{i}": FACE * 1100 for i in range(4)}  # 4,400 characters, 17,600 bytes

    payload = payload_bound(fields)

    assert payload != fields
    assert payload["f0"] == fields["f0"]
    assert payload["f3"].endswith("chars]")
    stored = sum(len(k.encode()) + len(v.encode()) for k, v in payload.items())
    assert stored <= PAYLOAD_MAX_BYTES
    json.dumps(payload)


def test_payload_bound_escapes_what_postgresql_cannot_store():
    assert payload_bound({"a": "x\x00y"}) == {"a": "x\\u0000y"}
