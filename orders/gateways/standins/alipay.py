"""A local Alipay OpenAPI stand-in that signs exactly as Alipay does (RSA2).

- GET/POST /gateway.do: our requests, their RSA2 signature checked with our app
  public key (all parameters but `sign`, sorted, `k=v` joined by `&`).
  `alipay.trade.page.pay` / `alipay.trade.wap.pay` answer the cashier page (a
  form a test or a browser submits to pay or cancel); `alipay.trade.query`,
  `.close`, `.refund` and `.fastpay.refund.query` answer JSON whose
  `<method>_response` object is signed with the stand-in's own key, as
  Alipay signs its synchronous replies.
- Async notifies: form POSTs to the trade's notify_url, signed over every field
  but `sign` and `sign_type`, retried until the shop answers `success`.

Run it in a thread: `AlipayStandin(app_id=..., app_public_key=...).start()`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from orders.gateways.standins.keys import (
    load_public,
    public_pem,
    rsa2_sign,
    rsa2_verifies,
    rsa_key,
)
from orders.gateways.standins.server import Notifier, Reply, Request, StandinServer

BEIJING = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_SELLER_ID = "2088000000000001"
PAY_METHODS = ("alipay.trade.page.pay", "alipay.trade.wap.pay")


def sign_content(fields: dict[str, str], *, exclude: tuple[str, ...]) -> str:
    """Sorted `k=v` joined by `&`, leaving out `exclude` and empty values."""
    return "&".join(
        f"{k}={v}" for k, v in sorted(fields.items()) if k not in exclude and v != ""
    )


def now_text() -> str:
    return dt.datetime.now(tz=BEIJING).strftime(TIME_FORMAT)


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    total_amount: Decimal
    subject: str
    notify_url: str
    return_url: str
    expires_at: dt.datetime | None
    status: str = "WAIT_BUYER_PAY"
    refunds: dict[str, Decimal] = field(default_factory=dict)  # out_request_no → amount

    @property
    def refunded(self) -> Decimal:
        return sum(self.refunds.values(), Decimal("0.00"))


class AlipayStandin:
    """Alipay's side of our trades, kept in memory, served over loopback HTTP."""

    def __init__(
        self,
        *,
        app_id: str,
        app_public_key: str,
        seller_id: str = DEFAULT_SELLER_ID,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app_id = app_id
        self.seller_id = seller_id
        self._app_key = load_public(app_public_key)
        self._key = rsa_key()
        self.public_key = public_pem(self._key)  # ALIPAY_PUBLIC_KEY for the shop
        self.trades: dict[str, Trade] = {}
        self.requests: list[dict[str, str]] = []  # every verified API call
        self.fail_next_http = 0  # answer this many calls with HTTP 502
        # Act on this many calls, then answer 502 (the answer lost on its way).
        self.lose_next_answer = 0
        self._lock = threading.RLock()
        self.notifier = Notifier(
            acknowledged=lambda r: r.status_code == 200 and r.text.strip() == "success"
        )
        self._server = StandinServer(self, host=host, port=port)

    # --- Life cycle -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    def start(self) -> AlipayStandin:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # --- HTTP -------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path == "/gateway.do":
            return self._gateway(request.form())
        if request.path.startswith("/cashier/") and request.method == "POST":
            trade_no = request.path.removeprefix("/cashier/").strip("/")
            action = request.form().get("action", "")
            return self._cashier_decide(trade_no, pay=action == "pay")
        return Reply.text("not found", 404)

    def _gateway(self, fields: dict[str, str]) -> Reply:
        method = fields.get("method", "")
        response_key = method.replace(".", "_") + "_response"
        if self.fail_next_http > 0:
            self.fail_next_http -= 1
            return Reply.text("bad gateway", 502)
        if not self._request_verifies(fields):
            error = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
                "sub_msg": "验签出错",
            }
            if method in PAY_METHODS:
                return Reply.text(
                    "<p>验签出错 isv.invalid-signature</p>", 400, "text/html"
                )
            # Unsigned, as Alipay answers a request it cannot authenticate.
            return Reply.text(
                json.dumps({response_key: error}), 200, "application/json"
            )
        if fields.get("app_id") != self.app_id:
            return self._signed(
                response_key, _failure("isv.invalid-app-id", "无效的AppID参数")
            )
        try:
            biz = json.loads(fields.get("biz_content") or "{}")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return self._signed(
                response_key, _failure("isv.invalid-parameter", "biz_content")
            )
        with self._lock:
            self.requests.append(fields)
            if method in PAY_METHODS:
                return self._cashier_open(fields, biz)
            handler = {
                "alipay.trade.query": self._query,
                "alipay.trade.close": self._close,
                "alipay.trade.refund": self._refund,
                "alipay.trade.fastpay.refund.query": self._refund_query,
            }.get(method)
            if handler is None:
                return self._signed(
                    response_key, _failure("isv.invalid-method", method)
                )
            answer = self._signed(response_key, handler(biz))
            if self.lose_next_answer > 0:
                self.lose_next_answer -= 1
                return Reply.text("bad gateway", 502)
            return answer

    def _request_verifies(self, fields: dict[str, str]) -> bool:
        return rsa2_verifies(
            self._app_key,
            sign_content(fields, exclude=("sign",)),
            fields.get("sign", ""),
        )

    def _signed(self, response_key: str, payload: dict[str, Any]) -> Reply:
        """The reply object's exact JSON text is what Alipay signs."""
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        body = (
            f'{{"{response_key}":{content},"sign":"{rsa2_sign(self._key, content)}"}}'
        )
        return Reply.text(body, 200, "application/json")

    # --- The cashier ------------------------------------------------------------

    def _cashier_open(self, fields: dict[str, str], biz: dict[str, Any]) -> Reply:
        """Alipay creates the trade when the shopper opens its cashier."""
        out_trade_no = str(biz.get("out_trade_no", ""))
        amount = Decimal(str(biz.get("total_amount", "0")))
        trade = self.trades.get(out_trade_no)
        if trade is None:
            expires = biz.get("time_expire")
            trade = Trade(
                out_trade_no=out_trade_no,
                trade_no=dt.datetime.now(tz=BEIJING).strftime("%Y%m%d")
                + f"22001{secrets.randbelow(10**15):015d}",
                total_amount=amount,
                subject=str(biz.get("subject", "")),
                notify_url=fields.get("notify_url", ""),
                return_url=fields.get("return_url", ""),
                expires_at=dt.datetime.strptime(expires, TIME_FORMAT).replace(
                    tzinfo=BEIJING
                )
                if expires
                else None,
            )
            self.trades[out_trade_no] = trade
        elif trade.total_amount != amount:
            return Reply.text(
                "<p>ACQ.CONTEXT_INCONSISTENT 交易信息被篡改</p>", 400, "text/html"
            )
        self._expire(trade)
        return Reply.text(self._cashier_html(trade), 200, "text/html")

    def _expire(self, trade: Trade) -> None:
        if (
            trade.status == "WAIT_BUYER_PAY"
            and trade.expires_at is not None
            and trade.expires_at < dt.datetime.now(tz=BEIJING)
        ):
            trade.status = "TRADE_CLOSED"

    def _cashier_html(self, trade: Trade) -> str:
        amount = html.escape(f"{trade.total_amount:.2f}")
        if trade.status != "WAIT_BUYER_PAY":
            return f"<h1>支付宝</h1><p>¥{amount}</p><p data-status>{trade.status}</p>"
        action = html.escape(f"/cashier/{trade.trade_no}/")
        return (
            f"<h1>支付宝</h1><p>{html.escape(trade.subject)}</p><p>¥{amount}</p>"
            f'<form method="post" action="{action}">'
            '<button name="action" value="pay">确认付款</button>'
            '<button name="action" value="cancel">取消</button></form>'
        )

    def _cashier_decide(self, trade_no: str, *, pay: bool) -> Reply:
        with self._lock:
            trade = next(
                (t for t in self.trades.values() if t.trade_no == trade_no), None
            )
            if trade is None:
                return Reply.text("no such trade", 404)
            self._expire(trade)
            if trade.status != "WAIT_BUYER_PAY":
                return Reply.text(self._cashier_html(trade), 409, "text/html")
            trade.status = "TRADE_SUCCESS" if pay else "TRADE_CLOSED"
            self.notify(trade.out_trade_no)
        if not pay or not trade.return_url:
            return Reply.text(self._cashier_html(trade), 200, "text/html")
        back = {
            "app_id": self.app_id,
            "method": "alipay.trade.page.pay.return",
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "total_amount": f"{trade.total_amount:.2f}",
            "seller_id": self.seller_id,
            "timestamp": now_text(),
            "charset": "utf-8",
            "sign_type": "RSA2",
        }
        back["sign"] = rsa2_sign(
            self._key, sign_content(back, exclude=("sign", "sign_type"))
        )
        joiner = "&" if "?" in trade.return_url else "?"
        return Reply.redirect(trade.return_url + joiner + urlencode(back))

    # --- OpenAPI methods ----------------------------------------------------------

    def _trade_for(self, biz: dict[str, Any]) -> Trade | None:
        if biz.get("trade_no"):
            return next(
                (t for t in self.trades.values() if t.trade_no == biz["trade_no"]),
                None,
            )
        return self.trades.get(str(biz.get("out_trade_no", "")))

    def _query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade_for(biz)
        if trade is None:
            return _failure("ACQ.TRADE_NOT_EXIST", "交易不存在")
        self._expire(trade)
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "trade_status": trade.status,
            "total_amount": f"{trade.total_amount:.2f}",
            "buyer_logon_id": "buy***@example.com",
        }

    def _close(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade_for(biz)
        if trade is None:
            return _failure("ACQ.TRADE_NOT_EXIST", "交易不存在")
        self._expire(trade)
        if trade.status != "WAIT_BUYER_PAY":
            return _failure("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.status = "TRADE_CLOSED"
        self.notify(trade.out_trade_no)
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
        }

    def _refund(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade_for(biz)
        if trade is None:
            return _failure("ACQ.TRADE_NOT_EXIST", "交易不存在")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        amount = Decimal(str(biz.get("refund_amount", "0")))
        fund_change = "N"
        if request_no in trade.refunds:
            if trade.refunds[request_no] != amount:
                return _failure(
                    "ACQ.REQUEST_AMOUNT_EXCEED", "请求退款金额与原请求不一致"
                )
        elif trade.status not in ("TRADE_SUCCESS",) and not (
            trade.status == "TRADE_CLOSED" and trade.refunds
        ):
            return _failure("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        elif amount <= 0 or trade.refunded + amount > trade.total_amount:
            return _failure("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        else:
            trade.refunds[request_no] = amount
            fund_change = "Y"
            if trade.refunded == trade.total_amount:
                trade.status = "TRADE_CLOSED"  # refunded in full
            self.notify(trade.out_trade_no, refund_no=request_no)
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "buyer_logon_id": "buy***@example.com",
            "fund_change": fund_change,
            "refund_fee": f"{trade.refunded:.2f}",
            "gmt_refund_pay": now_text(),
        }

    def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade_for(biz)
        if trade is None:
            return _failure("ACQ.TRADE_NOT_EXIST", "交易不存在")
        request_no = str(biz.get("out_request_no", ""))
        if request_no not in trade.refunds:
            return {"code": "10000", "msg": "Success"}
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": request_no,
            "total_amount": f"{trade.total_amount:.2f}",
            "refund_amount": f"{trade.refunds[request_no]:.2f}",
            "refund_status": "REFUND_SUCCESS",
        }

    # --- Notifies ---------------------------------------------------------------

    def notify_fields(
        self, out_trade_no: str, *, refund_no: str = "", **overrides: str
    ) -> dict[str, str]:
        """The signed notify Alipay would send now for this trade (`overrides` are
        applied before signing: a wrong app_id or amount, still validly signed)."""
        with self._lock:
            trade = self.trades[out_trade_no]
            fields = {
                "notify_time": now_text(),
                "notify_type": "trade_status_sync",
                "notify_id": secrets.token_hex(16),
                "charset": "utf-8",
                "version": "1.0",
                "sign_type": "RSA2",
                "app_id": self.app_id,
                "seller_id": self.seller_id,
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "trade_status": trade.status,
                "total_amount": f"{trade.total_amount:.2f}",
                "subject": trade.subject,
                "gmt_create": now_text(),
            }
            if trade.refunds:
                fields["refund_fee"] = f"{trade.refunded:.2f}"
                fields["gmt_refund"] = now_text()
            if refund_no:
                fields["out_biz_no"] = refund_no
        fields.update(overrides)
        fields["sign"] = rsa2_sign(
            self._key, sign_content(fields, exclude=("sign", "sign_type"))
        )
        return fields

    def notify(self, out_trade_no: str, *, refund_no: str = "") -> None:
        """POST the trade's current state to its notify_url (in the background)."""
        trade = self.trades[out_trade_no]
        if trade.notify_url:
            self.notifier.send(
                trade.notify_url,
                data=self.notify_fields(out_trade_no, refund_no=refund_no),
            )

    # --- For tests ----------------------------------------------------------------

    def finish(self, out_trade_no: str) -> None:
        """The refund period is over: TRADE_SUCCESS becomes TRADE_FINISHED."""
        with self._lock:
            self.trades[out_trade_no].status = "TRADE_FINISHED"


def _failure(sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": sub_code,
        "sub_msg": sub_msg,
    }
