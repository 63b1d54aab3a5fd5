"""The adapter for the generic recharge-supplier protocol (supplier-protocol.md).

Every request is signed with a fresh timestamp and nonce; every reply must carry a
valid signature over `code`, `message` and `data`, or its result is unknown. The
protocol's error table becomes one `SupplierError.outcome`:

- rejected (no order exists): 1001-1004, 1101, 2001-2004, 3001, 3002;
- retry_later (nothing changed): 4290 or HTTP 429, with Retry-After;
- unknown (the order may exist): 5000, HTTP 5xx or any other non-200, timeouts,
  connection errors, non-JSON or unverifiable replies, codes we do not know, and
  replies that do not describe the order we asked about.

Corrupt cards in a `success` card order are `unknown`, not `rejected`: the
supplier has charged us and the order exists, so the caller must query it again
with the same number (a later reply may carry intact cards) and never fail over
to another supplier, which would buy the cards twice. The error names neither the
card nor its envelope.

Each exchange is handed to `record` redacted: `sign` and card numbers and secrets
become "***"; the app secret never appears anywhere. Charge accounts stay (they
are the shopper's input and the operator needs them to investigate).
"""

from __future__ import annotations

import email.utils
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Literal, NoReturn, TypeVar, cast

import httpx

from config.lib.http import HttpTargetRefused, json_client
from fulfillment.suppliers import protocol
from fulfillment.suppliers.base import (
    CallbackPayload,
    CallbackRejected,
    Exchange,
    OrderState,
    Outcome,
    Recorder,
    SupplierCard,
    SupplierError,
    SupplierOrder,
    SupplierProductInfo,
)

logger = logging.getLogger(__name__)

REDACTED = "***"
ORDER_STATES: frozenset[str] = frozenset(
    {protocol.UNTREATED, protocol.PROCESSING, protocol.SUCCESS, protocol.FAILED}
)
# The error table's "rejected" rows: no order exists.
REJECTED_CODES = frozenset({
    protocol.BAD_SIGNATURE, protocol.TIMESTAMP_OUT_OF_WINDOW, protocol.NONCE_REUSED,
    protocol.APP_DISABLED, protocol.INVALID_PARAMETER, protocol.UNKNOWN_PRODUCT,
    protocol.PRODUCT_OFF_SHELF, protocol.OUT_OF_STOCK, protocol.CHARGE_ACCOUNT_INVALID,
    protocol.INSUFFICIENT_BALANCE, protocol.ORDER_NO_REUSED,
})  # fmt: skip
PRODUCT_TYPES = frozenset({"direct", "card"})
PRODUCT_STATUSES = frozenset({"on", "off"})
STOCK_LEVELS = frozenset({"ok", "low", "out"})
NONCE_BYTES = 16

T = TypeVar("T")

METHOD_PRODUCT_LIST = "product.list"
METHOD_BALANCE = "account.balance"
METHOD_DIRECT_ADD = "order.direct.add"
METHOD_CARD_ADD = "order.card.add"
METHOD_ORDER_GET = "order.get"


class _Malformed(ValueError):
    """A reply field is missing or of the wrong shape (message names the field only)."""


def _redact_cards(value: Any) -> Any:
    if not isinstance(value, list):
        return REDACTED
    return [
        {**card, "number": REDACTED, "secret": REDACTED}
        if isinstance(card, dict)
        else REDACTED
        for card in value
    ]


def _redacted(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to store: no signature, no card numbers or secrets, at any depth we use."""
    out = {k: (REDACTED if k == "sign" else v) for k, v in fields.items()}
    data = out.get("data")
    if isinstance(data, dict):
        data = dict(data)
        if "cards" in data:
            data["cards"] = _redact_cards(data["cards"])
        out["data"] = data
    return out


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _text(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise _Malformed(f"missing {name}")
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _Malformed(f"bad {name}")
    return str(value)


def _decimal(data: dict[str, Any], name: str) -> Decimal:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Malformed(f"bad {name}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _Malformed(f"bad {name}") from None
    if not amount.is_finite():
        raise _Malformed(f"bad {name}")
    return amount


def _choice(data: dict[str, Any], name: str, allowed: frozenset[str]) -> str:
    value = data.get(name)
    if value not in allowed:
        raise _Malformed(f"bad {name}")
    return cast(str, value)


@dataclass
class _Attempt:
    """One request in flight: what was sent, when, and what came back."""

    method: str
    request: dict[str, Any]
    started: float
    response: httpx.Response | None = None
    reply: dict[str, Any] | None = None


class GenericSupplierClient:
    """`SupplierClient` over the generic protocol, on a pooled connection per base URL."""

    def __init__(
        self,
        *,
        base_url: str,
        app_key: str,
        secret: str,
        record: Recorder | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._http = json_client(
            base_url, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self._app_key = app_key
        self._secret = secret
        self._record = record

    def __repr__(self) -> str:  # never the secret
        return f"<GenericSupplierClient {self._http.base_url} app_key={self._app_key}>"

    # --- SupplierClient ---

    def place_direct(
        self,
        *,
        product_id: str,
        customer_order_no: str,
        charge_account: str,
        buy_num: int,
        notify_url: str,
        max_price: Decimal | None = None,
    ) -> SupplierOrder:
        """`order.direct.add`. Raises SupplierError."""
        biz: dict[str, Any] = {
            "product_id": product_id,
            "customer_order_no": customer_order_no,
            "charge_account": charge_account,
            "buy_num": buy_num,
            "notify_url": notify_url,
        }
        if max_price is not None:
            biz["max_price"] = str(max_price)
        return self._call(
            METHOD_DIRECT_ADD,
            biz,
            partial(self._order, customer_order_no=customer_order_no, cards=False),
        )

    def place_card(
        self, *, product_id: str, customer_order_no: str, buy_num: int, notify_url: str
    ) -> SupplierOrder:
        """`order.card.add`. Raises SupplierError."""
        biz = {
            "product_id": product_id,
            "customer_order_no": customer_order_no,
            "buy_num": buy_num,
            "notify_url": notify_url,
        }
        return self._call(
            METHOD_CARD_ADD,
            biz,
            partial(self._order, customer_order_no=customer_order_no, cards=True),
        )

    def query(self, *, customer_order_no: str) -> SupplierOrder | None:
        """`order.get`; None when the supplier has no such order (3003). Raises SupplierError."""
        try:
            return self._call(
                METHOD_ORDER_GET,
                {"customer_order_no": customer_order_no},
                # A card order carries `cards` once successful; a direct one never does.
                lambda data: self._order(
                    data, customer_order_no=customer_order_no, cards="cards" in data
                ),
            )
        except SupplierError as exc:
            if exc.code == protocol.ORDER_NOT_FOUND:
                return None
            raise

    def balance(self) -> Decimal:
        """`account.balance`. Raises SupplierError."""
        return self._call(METHOD_BALANCE, {}, partial(_decimal, name="balance"))

    def products(self) -> list[SupplierProductInfo]:
        """`product.list`. Raises SupplierError."""
        return self._call(METHOD_PRODUCT_LIST, {}, _products)

    def callback_parse(self, body: bytes) -> CallbackPayload:
        """Verify and parse a callback body. Raises CallbackRejected.

        The signature covers every field but `sign`, the state included. No
        timestamp window: suppliers retry a callback for hours, and acting on a
        replayed one changes nothing (terminal states never change).
        """
        try:
            fields = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise CallbackRejected("callback body is not JSON") from None
        if not isinstance(fields, dict):
            raise CallbackRejected("callback body is not a JSON object")
        if not protocol.verify(fields, self._secret):
            raise CallbackRejected("callback signature missing or invalid")
        try:
            return CallbackPayload(
                order_id=_text(fields, "order_id"),
                customer_order_no=_text(fields, "customer_order_no"),
                state=cast(OrderState, _choice(fields, "state", ORDER_STATES)),
                fail_reason=_text(fields, "fail_reason", required=False),
            )
        except _Malformed as exc:
            raise CallbackRejected(f"callback {exc}") from None

    # --- transport ---

    def _call(
        self, method: str, biz: dict[str, Any], parse: Callable[[dict[str, Any]], T]
    ) -> T:
        """Sign, send, verify, parse; record the exchange once. Raises SupplierError."""
        request: dict[str, Any] = {
            "app_key": self._app_key,
            "timestamp": int(time.time()),
            "nonce": secrets.token_hex(NONCE_BYTES),
            "biz": biz,
        }
        request["sign"] = protocol.sign(request, self._secret)
        attempt = _Attempt(method, request, time.monotonic())
        data = self._exchange(attempt)
        try:
            result = parse(data)
        except _Malformed as exc:
            self._fail(attempt, f"malformed reply data ({exc})")
        except SupplierError as exc:  # corrupt cards, a reply about another order
            self._emit(attempt, exc.message)
            raise
        self._emit(attempt, "")
        return result

    def _exchange(self, attempt: _Attempt) -> dict[str, Any]:
        """POST and check the reply; returns `data` of a verified code-0 reply."""
        try:
            response = self._http.post_json(f"/api/{attempt.method}", attempt.request)
        except HttpTargetRefused as exc:
            # Nothing was sent, so no order can exist: fail over like a refusal.
            self._fail(attempt, str(exc), "rejected")
        except httpx.TimeoutException as exc:
            self._fail(attempt, f"timeout ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            self._fail(attempt, f"transport: {type(exc).__name__}")
        attempt.response = response
        try:
            reply = response.json()
        except ValueError:
            reply = None
        attempt.reply = reply if isinstance(reply, dict) else None

        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            # Safe to act on unverified: waiting changes nothing.
            self._fail(
                attempt,
                "rate limited (HTTP 429)",
                "retry_later",
                code=protocol.RATE_LIMITED,
                retry_after=_retry_after(response),
            )
        if response.status_code != httpx.codes.OK:
            self._fail(attempt, f"HTTP {response.status_code}")
        if attempt.reply is None:
            self._fail(attempt, "reply is not a JSON object")
        signed = {k: attempt.reply.get(k) for k in ("code", "message", "data", "sign")}
        if not protocol.verify(signed, self._secret):
            self._fail(attempt, "reply signature missing or invalid")
        code, data = attempt.reply.get("code"), attempt.reply.get("data") or {}
        if isinstance(code, bool) or not isinstance(code, int):
            self._fail(attempt, "reply has no code")
        if code != protocol.OK:
            self._code_error(attempt, code)
        if not isinstance(data, dict):
            self._fail(attempt, "reply data is not an object")
        return data

    def _code_error(self, attempt: _Attempt, code: int) -> NoReturn:
        message = str((attempt.reply or {}).get("message") or "")[:200]
        text = f"supplier code {code}: {message}".strip()
        if code == protocol.ORDER_NOT_FOUND and attempt.method == METHOD_ORDER_GET:
            # An answer, not a failure: query() turns it into None.
            self._emit(attempt, "")
            raise SupplierError(text, outcome="rejected", code=code)
        if code in REJECTED_CODES:
            self._fail(attempt, text, "rejected", code=code)
        if code == protocol.RATE_LIMITED:
            retry_after = _retry_after(attempt.response) if attempt.response else None
            self._fail(attempt, text, "retry_later", code=code, retry_after=retry_after)
        self._fail(attempt, text, code=code)  # 5000 and codes the protocol lacks

    def _fail(
        self,
        attempt: _Attempt,
        error: str,
        outcome: Outcome = "unknown",
        *,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> NoReturn:
        self._emit(attempt, error)
        raise SupplierError(
            f"{attempt.method}: {error}",
            outcome=outcome,
            code=code,
            retry_after=retry_after,
        )

    def _emit(self, attempt: _Attempt, error: str) -> None:
        latency_ms = int((time.monotonic() - attempt.started) * 1000)
        status = attempt.response.status_code if attempt.response is not None else None
        code = attempt.reply.get("code") if attempt.reply is not None else None
        logger.info(
            "supplier %s %s: http=%s code=%s %dms %s",
            self._http.base_url,
            attempt.method,
            status,
            code,
            latency_ms,
            error,
        )
        if self._record is None:
            return
        exchange = Exchange(
            method=attempt.method,
            request=_redacted(attempt.request),
            response=_redacted(attempt.reply) if attempt.reply is not None else None,
            http_status=status,
            latency_ms=latency_ms,
            error=error,
        )
        try:
            self._record(exchange)
        except Exception:
            # The timeline is secondary: losing one entry must not turn a placed
            # order into an error the caller would misread.
            logger.exception("supplier exchange recorder failed for %s", attempt.method)

    # --- parsing ---

    def _order(
        self, data: dict[str, Any], *, customer_order_no: str, cards: bool
    ) -> SupplierOrder:
        """Raises _Malformed, or SupplierError(unknown) for another order or corrupt cards."""
        try:
            buy_num = int(_text(data, "buy_num"))
        except ValueError:
            raise _Malformed("bad buy_num") from None
        order = SupplierOrder(
            order_id=_text(data, "order_id"),
            customer_order_no=_text(data, "customer_order_no"),
            product_id=_text(data, "product_id"),
            state=cast(OrderState, _choice(data, "state", ORDER_STATES)),
            price=_decimal(data, "price"),
            buy_num=buy_num,
            charge_account=_text(data, "charge_account", required=False),
            fail_reason=_text(data, "fail_reason", required=False),
        )
        if order.customer_order_no != customer_order_no:
            # Never act on a reply about some other order.
            raise SupplierError("reply is about another order", outcome="unknown")
        if not cards or order.state != protocol.SUCCESS:
            return order
        return replace(order, cards=self._cards(data.get("cards"), buy_num=buy_num))

    def _cards(self, raw: Any, *, buy_num: int) -> tuple[SupplierCard, ...]:
        """Open each card; any corrupt or missing card makes the result unknown (see module doc)."""
        if not isinstance(raw, list) or len(raw) != buy_num:
            raise SupplierError(
                f"successful card order without {buy_num} cards", outcome="unknown"
            )
        opened = []
        for index, card in enumerate(raw):
            try:
                if not isinstance(card, dict):
                    raise ValueError("card is not an object")
                number = _text(card, "number", required=False)
                envelope = _text(card, "secret")
                expires = _text(card, "expires", required=False)
                secret = protocol.card_secret_decrypt(envelope, self._secret)
            except ValueError:
                # Which card, never its content.
                raise SupplierError(
                    f"card {index + 1} of {len(raw)} is corrupt", outcome="unknown"
                ) from None
            opened.append(SupplierCard(number=number, secret=secret, expires=expires))
        return tuple(opened)


def _products(data: dict[str, Any]) -> list[SupplierProductInfo]:
    items = data.get("products")
    if not isinstance(items, list):
        raise _Malformed("missing products")
    return [_product(item) for item in items]


def _product(item: Any) -> SupplierProductInfo:
    if not isinstance(item, dict):
        raise _Malformed("product is not an object")
    return SupplierProductInfo(
        product_id=_text(item, "product_id"),
        name=_text(item, "name", required=False),
        type=cast(Literal["direct", "card"], _choice(item, "type", PRODUCT_TYPES)),
        face_value=_decimal(item, "face_value"),
        price=_decimal(item, "price"),
        status=cast(Literal["on", "off"], _choice(item, "status", PRODUCT_STATUSES)),
        stock=cast(Literal["ok", "low", "out"], _choice(item, "stock", STOCK_LEVELS)),
    )
