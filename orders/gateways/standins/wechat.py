"""A local WeChat Pay API v3 stand-in that signs and encrypts exactly as WeChat does.

- Every request must carry `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,
  nonce_str=…,signature=…,timestamp=…,serial_no=…`, the signature RSA-SHA256
  over `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` by the merchant key;
  otherwise 401 SIGN_ERROR.
- Every 2xx answer (204 too) is signed with the platform key over
  `TIMESTAMP\\nNONCE\\nBODY\\n` in the Wechatpay-* headers, Wechatpay-Serial being
  the platform public key id (public key mode: no /v3/certificates).
- Native, H5, query by out_trade_no, close, refund and refund query.
- Callbacks: the transaction encrypted AEAD_AES_256_GCM with the APIv3 key
  (associated data "transaction"), the envelope signed like an answer.
- Refunds are accepted PROCESSING and settled afterwards (`refund_settle`; at
  once unless `refund_settle_auto` is off), SUCCESS or, as `refund_outcome`
  says, ABNORMAL / CLOSED; the settlement is sent to the refund's notify_url as
  a REFUND.* callback, encrypted (associated data "refund") and signed alike.

Run it in a thread: `WechatStandin(mchid=..., appid=..., ...).start()`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from orders.gateways.standins.keys import (
    load_public,
    public_pem,
    rsa2_sign,
    rsa2_verifies,
    rsa_key,
)
from orders.gateways.standins.server import Notifier, Reply, Request, StandinServer
from orders.gateways.standins.wechat_callback import (
    REFUND_SUMMARY,
    envelope,
    refund_resource,
    rfc3339_now,
)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')
MAX_CLOCK_SKEW = 300
TRADE_PATH = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/]+)(/close)?$")
REFUND_PATH = re.compile(r"^/v3/refund/domestic/refunds/([^/]+)$")


@dataclass
class Trade:
    out_trade_no: str
    transaction_id: str
    prepay_id: str
    trade_type: str  # NATIVE | MWEB
    total: int  # fen
    description: str
    notify_url: str
    time_expire: dt.datetime | None
    state: str = "NOTPAY"
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        """Fen refunded or on their way: a CLOSED refund gave its amount back."""
        return sum(
            r["amount"]["refund"]
            for r in self.refunds.values()
            if r.get("status") != "CLOSED"
        )


class WechatStandin:
    """WeChat Pay's side of our trades, in memory, served over loopback HTTP."""

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_public_key: str,
        merchant_serial_no: str,
        apiv3_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.mchid = mchid
        self.appid = appid
        self.merchant_serial_no = merchant_serial_no
        self._merchant_key = load_public(merchant_public_key)
        self.apiv3_key = apiv3_key
        self._key = rsa_key()
        self.public_key = public_pem(self._key)  # WECHAT_PAY_PUBLIC_KEY for the shop
        self.public_key_id = "PUB_KEY_ID_" + secrets.token_hex(12).upper()
        self.trades: dict[str, Trade] = {}
        self.refund_calls = 0  # accepted refund requests, repeats included
        # How an accepted refund ends, and whether right after it is accepted.
        self.refund_outcome = "SUCCESS"
        self.refund_settle_auto = True
        self.refund_notify_urls: dict[str, str] = {}
        self._lock = threading.RLock()
        self.notifier = Notifier(acknowledged=lambda r: 200 <= r.status_code < 300)
        self._server = StandinServer(self, host=host, port=port)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def start(self) -> WechatStandin:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # --- Signatures ---------------------------------------------------------------

    def signed_headers(
        self, body: str, *, timestamp: int | None = None
    ) -> dict[str, str]:
        """The Wechatpay-* headers for `body`, as on every answer and callback."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa2_sign(self._key, f"{stamp}\n{nonce}\n{body}\n"),
            "Wechatpay-Serial": self.public_key_id,
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        }

    def _answer(self, status: int, payload: dict[str, Any] | None = None) -> Reply:
        body = (
            json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            if payload is not None
            else ""
        )
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if 200 <= status < 300:
            headers.update(self.signed_headers(body))
        return Reply(status, body.encode(), headers)

    def _error(self, status: int, code: str, message: str) -> Reply:
        return self._answer(status, {"code": code, "message": message})

    def _authorized(self, request: Request) -> bool:
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        fields = dict(AUTH_FIELD.findall(params))
        if scheme != SIGNATURE_TYPE or fields.get("mchid") != self.mchid:
            return False
        if fields.get("serial_no") != self.merchant_serial_no:
            return False
        try:
            if abs(time.time() - int(fields.get("timestamp", ""))) > MAX_CLOCK_SKEW:
                return False
        except ValueError:
            return False
        message = (
            f"{request.method}\n{request.target}\n{fields['timestamp']}\n"
            f"{fields.get('nonce_str', '')}\n{request.body.decode()}\n"
        )
        return rsa2_verifies(self._merchant_key, message, fields.get("signature", ""))

    # --- HTTP -------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path.startswith("/h5pay/"):
            return self._h5_cashier(request)
        if not request.path.startswith("/v3/"):
            return Reply.text("not found", 404)
        if not self._authorized(request):
            return self._error(401, "SIGN_ERROR", "签名错误")
        body: dict[str, Any] = {}
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                return self._error(400, "PARAM_ERROR", "请求体不是 JSON")
        with self._lock:
            if request.method == "POST" and request.path in (
                "/v3/pay/transactions/native",
                "/v3/pay/transactions/h5",
            ):
                return self._prepay(request.path.rsplit("/", 1)[1], body)
            if match := TRADE_PATH.match(request.path):
                if match.group(2) and request.method == "POST":
                    return self._close(match.group(1), body)
                if request.method == "GET":
                    return self._query(match.group(1), request.query)
            if (
                request.path == "/v3/refund/domestic/refunds"
                and request.method == "POST"
            ):
                return self._refund(body)
            if (match := REFUND_PATH.match(request.path)) and request.method == "GET":
                return self._refund_query(match.group(1))
        return self._error(404, "NOT_FOUND", "no such API in the stand-in")

    def _prepay(self, kind: str, body: dict[str, Any]) -> Reply:
        if body.get("mchid") != self.mchid or body.get("appid") != self.appid:
            return self._error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        out_trade_no = str(body.get("out_trade_no", ""))
        total = body.get("amount", {}).get("total")
        if not out_trade_no or not isinstance(total, int) or total <= 0:
            return self._error(400, "PARAM_ERROR", "参数错误")
        trade = self.trades.get(out_trade_no)
        trade_type = "NATIVE" if kind == "native" else "MWEB"
        if trade is None:
            expire = body.get("time_expire")
            trade = Trade(
                out_trade_no=out_trade_no,
                transaction_id="4200" + f"{secrets.randbelow(10**24):024d}",
                prepay_id="wx" + secrets.token_hex(16),
                trade_type=trade_type,
                total=total,
                description=str(body.get("description", "")),
                notify_url=str(body.get("notify_url", "")),
                time_expire=dt.datetime.fromisoformat(expire) if expire else None,
            )
            self.trades[out_trade_no] = trade
        elif trade.total != total or trade.trade_type != trade_type:
            return self._error(400, "INVALID_REQUEST", "201 商户订单号重复")
        self._expire(trade)
        if trade.state == "SUCCESS":
            return self._error(400, "ORDERPAID", "该订单已支付")
        if trade.state == "CLOSED":
            return self._error(400, "ORDER_CLOSED", "订单已关闭")
        if kind == "native":
            return self._answer(
                200, {"code_url": f"weixin://wxpay/bizpayurl?pr={trade.prepay_id}"}
            )
        query = urlencode({"prepay_id": trade.prepay_id, "package": "1"})
        return self._answer(200, {"h5_url": f"{self.base_url}/h5pay/?{query}"})

    def _expire(self, trade: Trade) -> None:
        if (
            trade.state == "NOTPAY"
            and trade.time_expire is not None
            and trade.time_expire < dt.datetime.now(tz=dt.UTC)
        ):
            trade.state = "CLOSED"

    def transaction(self, trade: Trade) -> dict[str, Any]:
        """The transaction object of queries and callbacks."""
        paid = trade.state in ("SUCCESS", "REFUND")
        return {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": trade.out_trade_no,
            "transaction_id": trade.transaction_id if paid else "",
            "trade_type": trade.trade_type,
            "trade_state": trade.state,
            "trade_state_desc": {"SUCCESS": "支付成功", "NOTPAY": "未支付"}.get(
                trade.state, trade.state
            ),
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": rfc3339_now() if paid else "",
            "payer": {"openid": "oStandin" + trade.out_trade_no[-8:]},
            "amount": {
                "total": trade.total,
                "payer_total": trade.total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }

    def _query(self, out_trade_no: str, query: dict[str, str]) -> Reply:
        if query.get("mchid") != self.mchid:
            return self._error(400, "PARAM_ERROR", "mchid")
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        self._expire(trade)
        return self._answer(200, self.transaction(trade))

    def _close(self, out_trade_no: str, body: dict[str, Any]) -> Reply:
        if body.get("mchid") != self.mchid:
            return self._error(400, "PARAM_ERROR", "mchid")
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.state in ("SUCCESS", "REFUND"):
            return self._error(400, "ORDERPAID", "订单已支付")
        trade.state = "CLOSED"
        return self._answer(204)

    def _refund(self, body: dict[str, Any]) -> Reply:
        refund_no = str(body.get("out_refund_no", ""))
        amount = body.get("amount", {})
        trade = next(
            (
                t
                for t in self.trades.values()
                if (t.transaction_id and t.transaction_id == body.get("transaction_id"))
                or t.out_trade_no == body.get("out_trade_no")
            ),
            None,
        )
        if trade is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if refund_no in trade.refunds:  # the same number refunds once
            self.refund_calls += 1
            return self._answer(200, trade.refunds[refund_no])
        refund, total = amount.get("refund"), amount.get("total")
        if trade.state not in ("SUCCESS", "REFUND"):
            return self._error(400, "INVALID_REQUEST", "订单未支付")
        if total != trade.total or not isinstance(refund, int) or refund <= 0:
            return self._error(400, "PARAM_ERROR", "订单金额或退款金额与之前请求不一致")
        if trade.refunded + refund > trade.total:
            return self._error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        self.refund_calls += 1
        record = {
            "refund_id": "5030" + f"{secrets.randbelow(10**24):024d}",
            "out_refund_no": refund_no,
            "transaction_id": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339_now(),
            "status": "PROCESSING",
            "funds_account": "AVAILABLE",
            "amount": {
                "total": trade.total,
                "refund": refund,
                "payer_total": trade.total,
                "payer_refund": refund,
                "settlement_total": trade.total,
                "settlement_refund": refund,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        trade.refunds[refund_no] = record
        trade.state = "REFUND"
        if body.get("notify_url"):
            self.refund_notify_urls[refund_no] = str(body["notify_url"])
        answer = self._answer(200, record)
        if self.refund_settle_auto:
            # Settled right after it is accepted: the answer still said PROCESSING.
            self.refund_settle(refund_no, self.refund_outcome)
        return answer

    def refund_settle(
        self, refund_no: str, status: str = "SUCCESS", *, notify: bool = True
    ) -> None:
        """WeChat ends a refund it accepted; its callback follows (unless `notify` is off)."""
        with self._lock:
            trade = self._trade_of_refund(refund_no)
            record = trade.refunds[refund_no]
            if record["status"] != "PROCESSING":
                return
            record = {**record, "status": status}
            if status == "SUCCESS":
                record["success_time"] = rfc3339_now()
            trade.refunds[refund_no] = record
        url = self.refund_notify_urls.get(refund_no)
        if notify and url:
            body, headers = self.refund_callback(refund_no)
            self.notifier.send(url, content=body, headers=headers)

    def _trade_of_refund(self, refund_no: str) -> Trade:
        return next(t for t in self.trades.values() if refund_no in t.refunds)

    def _refund_query(self, refund_no: str) -> Reply:
        for trade in self.trades.values():
            if refund_no in trade.refunds:
                return self._answer(200, trade.refunds[refund_no])
        return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")

    # --- The shopper's side -----------------------------------------------------

    def _h5_cashier(self, request: Request) -> Reply:
        """GET: WeChat's H5 cashier; POST: the shopper paid (then back to redirect_url)."""
        prepay_id = request.form().get("prepay_id", "")
        with self._lock:
            trade = next(
                (t for t in self.trades.values() if t.prepay_id == prepay_id), None
            )
        if trade is None:
            return Reply.text("no such prepay_id", 404)
        if request.method == "GET":
            return Reply.text(
                '<h1>微信支付</h1><form method="post">'
                '<button name="action" value="pay">立即支付</button></form>',
                200,
                "text/html",
            )
        self.pay(trade.out_trade_no)
        back = request.query.get("redirect_url", "")
        return Reply.redirect(back) if back else Reply.text("paid", 200)

    def pay(self, out_trade_no: str) -> None:
        """The shopper scanned and paid: SUCCESS, then the callback is sent."""
        with self._lock:
            trade = self.trades[out_trade_no]
            self._expire(trade)
            if trade.state != "NOTPAY":
                return
            trade.state = "SUCCESS"
        self.notify(out_trade_no)

    # --- Callbacks ----------------------------------------------------------------

    def callback(
        self,
        out_trade_no: str,
        *,
        timestamp: int | None = None,
        apiv3_key: str | None = None,
        **overrides: Any,
    ) -> tuple[bytes, dict[str, str]]:
        """The callback body and headers WeChat would send now for this trade.

        `overrides` change the transaction before it is encrypted (a wrong mchid
        or amount, still validly signed); `apiv3_key` encrypts with another key.
        """
        with self._lock:
            resource = {**self.transaction(self.trades[out_trade_no]), **overrides}
        body = envelope(
            resource,
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            kind="transaction",
            apiv3_key=apiv3_key or self.apiv3_key,
        )
        return body.encode(), self._callback_headers(body, timestamp=timestamp)

    def refund_callback(
        self,
        refund_no: str,
        *,
        timestamp: int | None = None,
        apiv3_key: str | None = None,
        **overrides: Any,
    ) -> tuple[bytes, dict[str, str]]:
        """The refund result callback WeChat would send now (REFUND.<status>).

        `overrides` change the refund resource before it is encrypted.
        """
        with self._lock:
            record = self._trade_of_refund(refund_no).refunds[refund_no]
            resource = {**refund_resource(record, mchid=self.mchid), **overrides}
        status = str(resource["refund_status"])
        body = envelope(
            resource,
            event_type=f"REFUND.{status}",
            summary=REFUND_SUMMARY.get(status, status),
            kind="refund",
            apiv3_key=apiv3_key or self.apiv3_key,
        )
        return body.encode(), self._callback_headers(body, timestamp=timestamp)

    def _callback_headers(self, body: str, *, timestamp: int | None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            **self.signed_headers(body, timestamp=timestamp),
        }

    def notify(self, out_trade_no: str) -> None:
        trade = self.trades[out_trade_no]
        if trade.notify_url:
            body, headers = self.callback(out_trade_no)
            self.notifier.send(trade.notify_url, content=body, headers=headers)
