"""WeChat Pay API v3 (微信支付) on wechatpayv3: Native (a QR code) and H5 (phones).

Platform public key mode: WeChat's answers and callbacks are verified with the
public key the merchant platform hands out (no certificate download at start).
Our requests carry the SDK's WECHATPAY2-SHA256-RSA2048 Authorization header; the
SDK's transport (requests) is replaced by config/lib/http.py, sending exactly the
bytes that were signed (orders/gateways/wechat_client.py). A callback is verified and its AEAD_AES_256_GCM resource
decrypted by the SDK; it is acted on only when fresh, for our mchid and appid.

Refunds are accepted (PROCESSING) and settled later; the result comes by callback
(/payments/notify/wechat/refund/) or refund query (orders/services/refund_results.py).

Amounts travel in fen (integers); Kaquan keeps yuan Decimals.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from wechatpayv3 import WeChatPayType

from orders.gateways.base import (
    BEIJING,
    Ack,
    ClientKind,
    GatewayError,
    GatewayUnavailable,
    NotifyRejected,
    ParsedNotify,
    ParsedRefundNotify,
    RefundState,
    fields_require,
    order_items_text,
    state_map,
)
from orders.gateways.wechat_client import (
    WechatClient,
    WechatConfig,
    answer,
    fen,
    yuan,
)

if TYPE_CHECKING:
    from orders.models import Order, Payment

# The callback headers kept as notify fields (lower case, as recorded).
HEADERS = (
    "wechatpay-signature",
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-serial",
    "wechatpay-signature-type",
)
# A callback signed longer ago than this is a replay, not WeChat's retry (each
# retry is signed afresh).
NOTIFY_MAX_AGE_SECONDS = 300
TRADE_STATE: dict[str, Literal["success", "closed", "waiting"]] = {
    "SUCCESS": "success",
    "REFUND": "success",  # paid, then (partly) refunded
    "NOTPAY": "waiting",
    "USERPAYING": "waiting",
    "CLOSED": "closed",
    "REVOKED": "closed",
    "PAYERROR": "closed",
}
# How a refund ends; each end has its result callback, REFUND.<word>.
REFUND_RESULTS: dict[str, Literal["succeeded", "failed"]] = {
    "SUCCESS": "succeeded",
    "CLOSED": "failed",
    "ABNORMAL": "failed",
}
REFUND_EVENTS = tuple(f"REFUND.{word}" for word in REFUND_RESULTS)
REFUND_STATUS: dict[str, Literal["succeeded", "processing", "failed"]] = {
    **REFUND_RESULTS,
    "PROCESSING": "processing",
}


class WechatGateway:
    name = "wechat"
    label = _("微信支付")

    def __init__(self, config: WechatConfig) -> None:
        self.config = config
        self.client = WechatClient(config)

    # --- Paying ---------------------------------------------------------------

    def payment_start(
        self,
        *,
        order: Order,
        notify_url: str,
        return_url: str,
        client: ClientKind = "desktop",
    ) -> str:
        """Native on desktop (our page shows the QR code), H5 on phones.

        The same order asked again gets the same code_url from WeChat. The trade
        expires with the order (time_expire).
        Raises: GatewayError, httpx.HTTPError.
        """
        from orders.gateways import wechat_page

        common: dict[str, Any] = {
            "description": self._description(order),
            "out_trade_no": order.number,
            "amount": {"total": fen(order.total_amount), "currency": "CNY"},
            "time_expire": order.expires_at.astimezone(BEIJING).isoformat(
                timespec="seconds"
            ),
            "notify_url": notify_url,
        }
        if client == "phone":
            payload = answer(
                *self.client.pay(
                    pay_type=WeChatPayType.H5,
                    scene_info={
                        "payer_client_ip": order.ip_address or "127.0.0.1",
                        "h5_info": {"type": "Wap"},
                    },
                    **common,
                )
            )
            h5_url = str(payload.get("h5_url", ""))
            if not h5_url.startswith(("https://", "http://")):
                raise GatewayUnavailable("wechat pay answered no h5_url")
            # WeChat sends the shopper back here once they leave its cashier.
            return f"{h5_url}&redirect_url={quote(return_url, safe='')}"
        payload = answer(*self.client.pay(pay_type=WeChatPayType.NATIVE, **common))
        code_url = str(payload.get("code_url", ""))
        if not code_url:
            raise GatewayUnavailable("wechat pay answered no code_url")
        token = wechat_page.token_make(
            number=order.number, code_url=code_url, return_url=return_url
        )
        return reverse("orders:wechat-pay", args=[token])

    @staticmethod
    def _description(order: Order) -> str:
        return (order_items_text(order) or order.number)[:127]

    # --- Callbacks --------------------------------------------------------------

    def notify_fields(
        self, *, body: bytes, headers: Mapping[str, str], post: Mapping[str, str]
    ) -> dict[str, str]:
        """The raw body (it is what was signed) and the Wechatpay-* headers."""
        text = body.decode("utf-8", errors="replace")
        fields = {"body": text}
        for name in HEADERS:
            fields[name] = str(headers.get(name, ""))
        try:
            notification = json.loads(text)
        except ValueError:
            notification = None
        if isinstance(notification, dict):
            fields["notify_id"] = str(notification.get("id", ""))[:64]
        return fields

    def ack(self, *, accepted: bool) -> Ack:
        if accepted:
            return 200, "application/json", json.dumps({"code": "SUCCESS"})
        reply = {"code": "FAIL", "message": "rejected"}
        return 400, "application/json", json.dumps(reply)

    def notify_parse(self, fields: dict[str, str]) -> ParsedNotify:
        """Verify the signature, decrypt the resource, check who it is for.

        Raises: NotifyRejected (invalid, bad_signature).
        """
        notify_id, resource = self._callback_open(
            fields, events=("TRANSACTION.SUCCESS",), what="a payment"
        )
        trade = self._trade(resource)
        if trade.status != "success":
            raise NotifyRejected("trade_state is not SUCCESS", code="invalid")
        return ParsedNotify(
            out_trade_no=trade.out_trade_no,
            trade_no=trade.trade_no,
            amount=trade.amount,
            status=trade.status,
            notify_id=notify_id,
        )

    def refund_notify_parse(self, fields: dict[str, str]) -> ParsedRefundNotify:
        """A refund result callback (REFUND.SUCCESS / ABNORMAL / CLOSED), verified.

        The state is read from the encrypted resource (what WeChat signed and
        only we can read), the refund number and amount checked by the caller.
        Raises: NotifyRejected (invalid, bad_signature).
        """
        notify_id, resource = self._callback_open(
            fields, events=REFUND_EVENTS, what="a refund result"
        )
        self._mchid_check(resource)
        word = str(resource.get("refund_status", ""))
        status = REFUND_RESULTS.get(word)
        amount = resource.get("amount")
        refunded = yuan(amount.get("refund")) if isinstance(amount, dict) else None
        refund_no = str(resource.get("out_refund_no", ""))
        if status is None or refunded is None or not refund_no:
            raise NotifyRejected(
                f"refund {refund_no[:40]} {word[:20]}: not a final refund of an amount",
                code="invalid",
            )
        return ParsedRefundNotify(
            out_trade_no=str(resource.get("out_trade_no", "")),
            trade_no=str(resource.get("transaction_id", "")),
            refund_no=refund_no,
            status=status,
            amount=refunded,
            notify_id=notify_id,
            detail=word,
        )

    def _callback_open(
        self, fields: dict[str, str], *, events: tuple[str, ...], what: str
    ) -> tuple[str, dict[str, Any]]:
        """A callback's id and resource: signature verified, resource decrypted.

        Raises: NotifyRejected (invalid: another event; bad_signature, also when
        signed too long ago: a replay, not WeChat's retry, which is signed afresh).
        """
        fields_require(fields, ("body", *HEADERS))
        try:
            signed_at = int(fields["wechatpay-timestamp"])
        except ValueError:
            raise NotifyRejected("timestamp is not a number", code="invalid") from None
        if abs(time.time() - signed_at) > NOTIFY_MAX_AGE_SECONDS:
            raise NotifyRejected("signed too long ago", code="bad_signature")
        headers = {
            "Wechatpay-Signature": fields["wechatpay-signature"],
            "Wechatpay-Timestamp": fields["wechatpay-timestamp"],
            "Wechatpay-Nonce": fields["wechatpay-nonce"],
            "Wechatpay-Serial": fields["wechatpay-serial"],
            "Wechatpay-Signature-Type": fields["wechatpay-signature-type"],
        }
        try:
            # None: the signature or the decryption failed.
            notification = self.client.callback(headers, fields["body"])
        except Exception:  # the SDK raises bare Exception
            notification = None
        if not isinstance(notification, dict):
            raise NotifyRejected(
                "signature or encryption does not verify", code="bad_signature"
            )
        event = str(notification.get("event_type"))
        if event not in events:
            raise NotifyRejected(f"event {event[:40]} is not {what}", code="invalid")
        resource = notification.get("resource")
        if not isinstance(resource, dict):
            raise NotifyRejected("resource is not an object", code="invalid")
        return str(notification.get("id", ""))[:64], resource

    def _mchid_check(self, resource: Mapping[str, Any]) -> None:
        if resource.get("mchid") != self.config.mchid:
            raise NotifyRejected(
                f"mchid {str(resource.get('mchid'))[:32]} is not ours", code="invalid"
            )

    def _trade(self, resource: Mapping[str, Any]) -> ParsedNotify:
        """A transaction (callback resource or query answer), checked to be ours.

        Raises: NotifyRejected (invalid).
        """
        self._mchid_check(resource)
        if resource.get("appid") != self.config.appid:
            raise NotifyRejected(
                f"appid {str(resource.get('appid'))[:32]} is not ours", code="invalid"
            )
        amount = resource.get("amount")
        if not isinstance(amount, dict):
            raise NotifyRejected("amount is missing", code="invalid")
        total = yuan(amount.get("total"))
        if total is None or amount.get("currency", "CNY") != "CNY":
            raise NotifyRejected("amount is not a CNY amount in fen", code="invalid")
        state = TRADE_STATE.get(str(resource.get("trade_state")))
        if state is None:
            raise NotifyRejected("unknown trade_state", code="invalid")
        return ParsedNotify(
            out_trade_no=str(resource.get("out_trade_no", "")),
            trade_no=str(resource.get("transaction_id", "")),
            amount=total,
            status=state,
            notify_id="",
        )

    # --- Trade query and close --------------------------------------------------

    def query(self, *, out_trade_no: str) -> ParsedNotify | None:
        """GET /v3/pay/transactions/out-trade-no/{no}; None when WeChat has none."""
        code, text = self.client.query(out_trade_no=out_trade_no)
        if code == 404:
            return None
        try:
            return self._trade(answer(code, text))
        except NotifyRejected as exc:
            raise GatewayUnavailable(f"wechat pay query: {exc.message}") from None

    def payment_on_its_way(self, *, out_trade_no: str) -> bool:
        """WeChat Pay keeps no trade of ours: `query` asks it (the order page's return)."""
        return False

    def close(self, *, out_trade_no: str) -> None:
        """POST …/close (204). Never opened or already closed is fine; paid refuses."""
        code, text = self.client.close(out_trade_no=out_trade_no)
        if code == 404:
            return
        try:
            answer(code, text)
        except GatewayError as exc:
            if exc.code != "ORDER_CLOSED":
                raise

    # --- Refunds ----------------------------------------------------------------

    def refund(
        self, *, payment: Payment, amount: Decimal, refund_no: str
    ) -> RefundState | None:
        """POST /v3/refund/domestic/refunds; the same out_refund_no refunds once.

        Accepted (PROCESSING) is not done: the `processing` state is returned and
        WeChat tells the result by callback (our notify_url) or refund query.
        SUCCESS already (a repeat of a settled refund): None.
        Raises: GatewayError when refused or ended CLOSED/ABNORMAL.
        """
        base = settings.PAYMENT_NOTIFY_BASE_URL or settings.SITE_URL
        payload = answer(
            *self.client.refund(
                out_refund_no=refund_no,
                transaction_id=payment.trade_no,
                amount={
                    "refund": fen(amount),
                    "total": fen(payment.amount),
                    "currency": "CNY",
                },
                notify_url=base + reverse("orders:refund-notify", args=[self.name]),
            )
        )
        word = str(payload.get("status"))
        status = REFUND_STATUS.get(word)
        if status is None or status == "failed":
            raise GatewayError(f"wechat pay refund {refund_no}: {word[:20]}")
        if status == "succeeded":
            return None
        return RefundState(
            refund_no=refund_no, status=status, amount=amount, detail=word
        )

    def refund_query(self, *, payment: Payment, refund_no: str) -> RefundState | None:
        """GET /v3/refund/domestic/refunds/{out_refund_no}; None when unknown."""
        code, text = self.client.query_refund(out_refund_no=refund_no)
        if code == 404:
            return None
        payload = answer(code, text)
        status = state_map(
            REFUND_STATUS,
            payload.get("status"),
            unknown="wechat pay refund query: unknown status",
        )
        amount = payload.get("amount")
        word = str(payload.get("status"))
        return RefundState(
            refund_no=refund_no,
            status=status,
            amount=yuan(amount.get("refund")) if isinstance(amount, dict) else None,
            detail=word,
            closed=word == "CLOSED",
        )
