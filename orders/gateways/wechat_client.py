"""WeChat Pay API v3: the SDK (wechatpayv3) wired to our settings and HTTP.

Our requests carry the SDK's WECHATPAY2-SHA256-RSA2048 Authorization header; the
SDK's transport (requests) is replaced by config/lib/http.py, sending exactly the
bytes that were signed, and every 2xx answer is verified with the platform public
key. Amounts travel in fen (integers); Kaquan keeps yuan Decimals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core
from wechatpayv3.type import RequestType
from wechatpayv3.utils import build_authorization

from config.lib.http import http_request
from config.lib.money import CENT
from orders.gateways.base import GatewayUnavailable, gateway_refusal


@dataclass(frozen=True)
class WechatConfig:
    mchid: str
    appid: str
    cert_serial_no: str
    private_key: str
    apiv3_key: str
    public_key: str
    public_key_id: str
    api_url: str

    @classmethod
    def from_settings(cls) -> WechatConfig | None:
        """None while WeChat Pay is off (settings refuse to start half-configured)."""
        if not settings.PAYMENT_WECHAT_ENABLED:
            return None
        return cls(
            mchid=settings.WECHAT_PAY_MCHID,
            appid=settings.WECHAT_PAY_APPID,
            cert_serial_no=settings.WECHAT_PAY_CERT_SERIAL_NO,
            private_key=settings.WECHAT_PAY_PRIVATE_KEY,
            apiv3_key=settings.WECHAT_PAY_APIV3_KEY,
            public_key=settings.WECHAT_PAY_PUBLIC_KEY,
            public_key_id=settings.WECHAT_PAY_PUBLIC_KEY_ID,
            api_url=settings.WECHAT_PAY_API_URL.rstrip("/"),
        )


def fen(amount: Decimal) -> int:
    return int((amount / CENT).to_integral_exact())


def yuan(value: object) -> Decimal | None:
    return Decimal(value) * CENT if isinstance(value, int) and value >= 0 else None


class _Core(Core):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's signing and verification over our HTTP wrapper."""

    def __init__(self, config: WechatConfig) -> None:
        super().__init__(
            mchid=config.mchid,
            cert_serial_no=config.cert_serial_no,
            private_key=config.private_key,
            apiv3_key=config.apiv3_key,
            public_key=config.public_key,
            public_key_id=config.public_key_id,
        )
        self._gate_way = config.api_url

    def request(
        self,
        path: str,
        method: RequestType = RequestType.GET,
        data: Any = None,
        skip_verify: bool = False,
        sign_data: Any = None,
        files: Any = None,
        cipher_data: bool = False,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Sign, send, verify: the SDK's request, with the signed bytes sent as such.

        Raises: GatewayUnavailable when a 2xx answer does not verify, httpx.HTTPError.
        """
        body = json.dumps(data) if data is not None else ""
        authorization = build_authorization(
            path,
            method.value,
            self._mchid,
            self._cert_serial_no,
            self._private_key,
            data=body,
        )
        response = http_request(
            method.value,
            self._gate_way + path,
            content=body.encode() if method != RequestType.GET else None,
            headers={
                **(headers or {}),
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": authorization,
                "Wechatpay-Serial": self._public_key_id,
            },
        )
        if 200 <= response.status_code < 300 and not skip_verify:
            try:
                verified = self._verify_signature(response.headers, response.text)
            except Exception:  # the SDK raises bare Exception
                verified = False
            if not verified:
                raise GatewayUnavailable("wechat pay reply signature does not verify")
        return response.status_code, response.text


class WechatClient(WeChatPay):  # type: ignore[misc]  # the SDK is untyped
    def __init__(self, config: WechatConfig) -> None:
        super().__init__(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=config.mchid,
            private_key=config.private_key,
            cert_serial_no=config.cert_serial_no,
            appid=config.appid,
            apiv3_key=config.apiv3_key,
            public_key=config.public_key,
            public_key_id=config.public_key_id,
        )
        self._core = _Core(config)


def answer(code: int, text: str) -> dict[str, Any]:
    """The JSON of a 2xx answer; a 5xx is worth retrying, a 4xx is a refusal."""
    if code >= 500:
        raise GatewayUnavailable(f"wechat pay answered HTTP {code}")
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        raise GatewayUnavailable("wechat pay answered something not JSON") from None
    if not isinstance(payload, dict):
        raise GatewayUnavailable("wechat pay answered something not an object")
    if code >= 300:
        detail = f"{payload.get('code', code)} {str(payload.get('message', ''))[:120]}"
        raise gateway_refusal("wechat pay", detail, code=payload.get("code"))
    return payload
