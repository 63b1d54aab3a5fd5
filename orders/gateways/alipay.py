"""Alipay (支付宝) on python-alipay-sdk: page pay on desktop, wap pay on phones.

Requests are signed RSA2 with our app key; Alipay's answers and notifies are
verified with Alipay's public key (the SDK does both). The SDK's own transport
(urllib) is replaced by config/lib/http.py so the timeout and target rules hold.

A notify is acted on only when its signature verifies and it is for our app and
our seller account; its amount goes back to the caller, who checks it against
the order. TRADE_SUCCESS and TRADE_FINISHED both mean paid (FINISHED follows
SUCCESS once the trade can no longer be refunded: the same payment again).
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from config.lib.http import http_get
from config.lib.money import format_amount, parse_amount
from orders.gateways.base import (
    BEIJING,
    Ack,
    ClientKind,
    GatewayError,
    GatewayUnavailable,
    NotifyRejected,
    ParsedNotify,
    RefundState,
    fields_require,
    form_notify_fields,
    gateway_refusal,
    order_items_text,
    state_map,
    text_ack,
)

if TYPE_CHECKING:
    from orders.models import Order, Payment

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Alipay's timestamps, Beijing time
CODE_OK = "10000"
CODE_SYSTEM_ERROR = "20000"  # "service unavailable": try again later
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
NOTIFY_REQUIRED = (
    "notify_id",
    "app_id",
    "out_trade_no",
    "trade_no",
    "trade_status",
    "total_amount",
    "sign",
)
NOTIFY_STATUS: dict[str, Literal["success", "closed"]] = {
    "TRADE_SUCCESS": "success",
    "TRADE_FINISHED": "success",
    "TRADE_CLOSED": "closed",
}
QUERY_STATUS: dict[str, Literal["success", "closed", "waiting"]] = {
    **NOTIFY_STATUS,
    "WAIT_BUYER_PAY": "waiting",
}
# Alipay refuses these in a subject.
SUBJECT_UNSAFE = re.compile(r"[/=&\\\s]+")


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    seller_id: str
    app_private_key: str
    alipay_public_key: str
    gateway_url: str

    @classmethod
    def from_settings(cls) -> AlipayConfig | None:
        """None while Alipay is off (settings refuse to start half-configured)."""
        if not settings.PAYMENT_ALIPAY_ENABLED:
            return None
        return cls(
            app_id=settings.ALIPAY_APP_ID,
            seller_id=settings.ALIPAY_SELLER_ID,
            app_private_key=settings.ALIPAY_APP_PRIVATE_KEY,
            alipay_public_key=settings.ALIPAY_PUBLIC_KEY,
            gateway_url=settings.ALIPAY_GATEWAY_URL,
        )


def pem(key: str) -> str:
    """Alipay's console hands out bare base64 keys; the SDK wants PEM.

    The markers do not matter to the parser (it tries PKCS#1 and PKCS#8 alike).
    """
    key = key.strip()
    if key.startswith("-----"):
        return key
    body = "\n".join(key[i : i + 64] for i in range(0, len(key), 64))
    return f"-----BEGIN KEY-----\n{body}\n-----END KEY-----"


def beijing(moment: dt.datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


class AlipayClient(AliPay):  # type: ignore[misc]  # the SDK is untyped
    """The SDK with our transport, Beijing timestamps and a configurable gateway URL."""

    def __init__(self, config: AlipayConfig) -> None:
        super().__init__(
            appid=config.app_id,
            app_private_key_string=pem(config.app_private_key),
            alipay_public_key_string=pem(config.alipay_public_key),
            sign_type="RSA2",
        )
        self._gateway = config.gateway_url

    @property
    def gateway_url(self) -> str:
        return str(self._gateway)

    def build_body(
        self, method: str, biz_content: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        data: dict[str, Any] = super().build_body(method, biz_content, **kwargs)
        # The SDK uses the server's local time; Alipay reads Beijing time.
        data["timestamp"] = beijing(dt.datetime.now(tz=BEIJING))
        return data

    def verified_sync_response(
        self, data: dict[str, Any], response_type: str
    ) -> dict[str, Any]:
        """One API call: GET the signed query (as the SDK does), verify the signed reply.

        Raises: GatewayUnavailable (5xx, unsigned or badly signed reply), GatewayError
        (an unsigned refusal, such as our own signature not verifying), httpx.HTTPError.
        """
        response = http_get(self.gateway_url + "?" + self.sign_data(data))
        if response.status_code >= 500:
            raise GatewayUnavailable(f"alipay answered HTTP {response.status_code}")
        try:
            result: dict[str, Any] = self._verify_and_return_sync_response(
                response.text, response_type
            )
        except AliPayValidationError:
            raise GatewayUnavailable("alipay reply signature does not verify") from None
        except AliPayException as exc:
            raise gateway_refusal("alipay", str(exc)[:160], code=None) from None
        except (ValueError, KeyError, AttributeError, binascii.Error):
            raise GatewayUnavailable("alipay reply is not the expected JSON") from None
        if result.get("code") == CODE_SYSTEM_ERROR:
            raise GatewayUnavailable(f"alipay busy: {result.get('sub_code', '')}")
        return result


def _refusal(result: Mapping[str, Any]) -> GatewayError:
    detail = " ".join(str(result.get(k, "")) for k in ("code", "sub_code", "sub_msg"))
    return gateway_refusal("alipay", detail.strip()[:160], code=result.get("sub_code"))


class AlipayGateway:
    name = "alipay"
    label = _("支付宝")

    def __init__(self, config: AlipayConfig) -> None:
        self.config = config
        self.client = AlipayClient(config)

    # --- Paying ---------------------------------------------------------------

    def payment_start(
        self,
        *,
        order: Order,
        notify_url: str,
        return_url: str,
        client: ClientKind = "desktop",
    ) -> str:
        """The signed URL of Alipay's cashier (page pay on desktop, wap pay on phones).

        No network call: the trade exists at Alipay only once the shopper opens it.
        It expires with the order (time_expire), so an expired order cannot be
        paid even where `close` finds no trade to close.
        """
        extra = {"time_expire": beijing(order.expires_at)}
        subject = self._subject(order)
        amount = format_amount(order.total_amount)
        if client == "phone":
            query = self.client.api_alipay_trade_wap_pay(
                subject=subject,
                out_trade_no=order.number,
                total_amount=amount,
                return_url=return_url,
                notify_url=notify_url,
                quit_url=return_url,
                **extra,
            )
        else:
            query = self.client.api_alipay_trade_page_pay(
                subject=subject,
                out_trade_no=order.number,
                total_amount=amount,
                return_url=return_url,
                notify_url=notify_url,
                **extra,
            )
        return f"{self.client.gateway_url}?{query}"

    @staticmethod
    def _subject(order: Order) -> str:
        names = SUBJECT_UNSAFE.sub(" ", order_items_text(order)).strip()
        return (names or order.number)[:128]

    # --- Notifies -------------------------------------------------------------

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]:
        return form_notify_fields(post)

    def ack(self, *, accepted: bool) -> Ack:
        return text_ack(accepted=accepted)

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        """Verify an async notify (RSA2 over the sorted fields but sign and sign_type).

        Raises: NotifyRejected (invalid, bad_signature).
        """
        fields_require(fields, NOTIFY_REQUIRED)
        if not self._verifies(fields):
            raise NotifyRejected("signature does not verify", code="bad_signature")
        # Signed by Alipay, but for whom: another app or seller is not ours to act on.
        if fields["app_id"] != self.config.app_id:
            raise NotifyRejected(
                f"app_id {fields['app_id'][:32]} is not ours", code="invalid"
            )
        if fields.get("seller_id", "") != self.config.seller_id:
            raise NotifyRejected(
                f"seller_id {fields.get('seller_id', '')[:32]} is not ours",
                code="invalid",
            )
        amount = parse_amount(fields["total_amount"])
        if amount is None:
            raise NotifyRejected("total_amount is not a 2-place amount", code="invalid")
        status = NOTIFY_STATUS.get(fields["trade_status"])
        if status is None:
            # WAIT_BUYER_PAY (when enabled) says nothing we act on.
            raise NotifyRejected(
                f"trade_status {fields['trade_status'][:30]} is not final",
                code="invalid",
            )
        return ParsedNotify(
            out_trade_no=fields["out_trade_no"],
            trade_no=fields["trade_no"],
            amount=amount,
            status=status,
            notify_id=fields["notify_id"],
        )

    def _verifies(self, fields: dict[str, str]) -> bool:
        unsigned = {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}
        if fields.get("sign_type", "RSA2") != "RSA2":
            return False
        try:
            return bool(self.client.verify(unsigned, fields["sign"]))
        except (ValueError, binascii.Error, AliPayException):
            return False

    # --- Trade query and close --------------------------------------------------

    def query(self, *, out_trade_no: str) -> ParsedNotify | None:
        """alipay.trade.query. None when Alipay has no trade (never opened)."""
        result = self.client.api_alipay_trade_query(out_trade_no=out_trade_no)
        if result.get("code") != CODE_OK:
            if result.get("sub_code") == TRADE_NOT_EXIST:
                return None
            raise _refusal(result)
        unknown = "alipay trade query answered an unknown state"
        status = state_map(QUERY_STATUS, result.get("trade_status"), unknown=unknown)
        amount = parse_amount(str(result.get("total_amount", "")))
        if amount is None:
            raise GatewayUnavailable(unknown)
        return ParsedNotify(
            out_trade_no=str(result.get("out_trade_no", out_trade_no)),
            trade_no=str(result.get("trade_no", "")),
            amount=amount,
            status=status,
            notify_id="",
        )

    def payment_on_its_way(self, *, out_trade_no: str) -> bool:
        """Alipay keeps no trade of ours: `query` asks it (the order page's return)."""
        return False

    def close(self, *, out_trade_no: str) -> None:
        """alipay.trade.close; a trade never opened or already closed is fine.

        Raises: GatewayError when the trade is paid (the notify will tell us).
        """
        result = self.client.api_alipay_trade_close(out_trade_no=out_trade_no)
        if result.get("code") == CODE_OK or result.get("sub_code") == TRADE_NOT_EXIST:
            return
        if result.get("sub_code") == TRADE_STATUS_ERROR:
            # Closed already, or paid: only the query tells which.
            trade = self.query(out_trade_no=out_trade_no)
            if trade is None or trade.status == "closed":
                return
        raise _refusal(result)

    # --- Refunds ----------------------------------------------------------------

    def refund(self, *, payment: Payment, amount: Decimal, refund_no: str) -> None:
        """alipay.trade.refund with out_request_no = refund_no (Alipay's idempotency key).

        Synchronous: a success answer means the money is back (None). A repeat
        of a refund already made answers success without moving money
        (fund_change=N); a first answer of N is confirmed by a refund query.
        Raises: GatewayError (refused), GatewayUnavailable / httpx.HTTPError
        (unknown outcome: the retry asks refund_query before asking again).
        """
        result = self.client.api_alipay_trade_refund(
            refund_amount=format_amount(amount),
            trade_no=payment.trade_no,
            out_request_no=refund_no,
        )
        if result.get("code") != CODE_OK:
            raise _refusal(result)
        if result.get("fund_change") == "Y":
            return
        state = self.refund_query(payment=payment, refund_no=refund_no)
        if state is None or state.status != "succeeded":
            raise GatewayUnavailable(f"alipay has not confirmed refund {refund_no} yet")

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        """alipay.trade.fastpay.refund.query; None when no such refund succeeded."""
        result = self.client.api_alipay_trade_fastpay_refund_query(
            out_request_no=refund_no, trade_no=payment.trade_no
        )
        if result.get("code") != CODE_OK:
            if result.get("sub_code") == TRADE_NOT_EXIST:
                return None
            raise _refusal(result)
        # No refund_status: Alipay never received the request, or it failed.
        if result.get("refund_status") != "REFUND_SUCCESS":
            return None
        return RefundState(
            refund_no=refund_no,
            status="succeeded",
            amount=parse_amount(str(result.get("refund_amount", ""))),
        )
