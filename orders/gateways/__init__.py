"""Payment gateways behind one interface. Registered explicitly; no dynamic loading.

Only the gateways switched on in settings exist: a disabled one is unknown to
checkout, to the notify endpoint (404) and to every service. The registry is
built from settings once, and again after any setting changes (tests:
`setting_changed`), each real gateway once per configuration (its keys are
parsed once), so tests that change settings see the change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache

from django.core.signals import setting_changed
from django.http import HttpRequest

from orders.gateways import sandbox
from orders.gateways.alipay import AlipayConfig, AlipayGateway
from orders.gateways.balance import BalanceGateway
from orders.gateways.base import (
    ClientKind,
    Gateway,
    GatewayError,
    GatewayUnavailable,
    NotifyRejected,
    ParsedNotify,
    ParsedRefundNotify,
    RefundNotifying,
    RefundState,
)
from orders.gateways.wechat import WechatGateway
from orders.gateways.wechat_client import WechatConfig


@lru_cache(maxsize=4)
def _alipay(config: AlipayConfig) -> AlipayGateway:
    return AlipayGateway(config)


@lru_cache(maxsize=4)
def _wechat(config: WechatConfig) -> WechatGateway:
    return WechatGateway(config)


class _Registry:
    # The gateways `_build` made from the settings, until a setting changes
    # (tests; a running process never changes its settings).
    enabled: dict[str, Gateway] | None = None


def _settings_changed(**kwargs: object) -> None:
    _Registry.enabled = None


setting_changed.connect(_settings_changed, dispatch_uid="orders.gateways.registry")


def _enabled() -> dict[str, Gateway]:
    """The enabled gateways in the order checkout offers them."""
    enabled = _Registry.enabled
    if enabled is None:
        enabled = _Registry.enabled = _build()
    return enabled


def _build() -> dict[str, Gateway]:
    gateways: dict[str, Gateway] = {}
    alipay_config = AlipayConfig.from_settings()
    if alipay_config is not None:
        gateways[AlipayGateway.name] = _alipay(alipay_config)
    wechat_config = WechatConfig.from_settings()
    if wechat_config is not None:
        gateways[WechatGateway.name] = _wechat(wechat_config)
    if sandbox.is_enabled():
        gateways[sandbox.SandboxGateway.name] = sandbox.SandboxGateway()
    return gateways


class HeadersOnRequest(Mapping[str, str]):
    """A request's headers for `Gateway.notify_fields`, built from the WSGI
    environ only when a gateway reads one (WeChat Pay's signature headers; the
    form-posting gateways read none)."""

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    def __getitem__(self, name: str) -> str:
        return str(self._request.headers[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.headers)

    def __len__(self) -> int:
        return len(self._request.headers)


def gateway_get(name: str) -> Gateway | None:
    return _enabled().get(name)


# Never offered at checkout nor reachable by a notify: partner API orders are
# paid from their prepaid balance (orders/gateways/balance.py).
_INTERNAL: dict[str, Gateway] = {BalanceGateway.name: BalanceGateway()}


def gateway_for_payment(name: str) -> Gateway | None:
    """The gateway a recorded payment went through (refunds), internal ones included."""
    return _enabled().get(name) or _INTERNAL.get(name)


def gateways_all() -> list[Gateway]:
    return list(_enabled().values())


def payment_on_its_way(*, out_trade_no: str) -> bool:
    """Whether an enabled gateway already knows the order paid, its notify still
    to come (the order page's "payment being confirmed"). No network call."""
    return any(
        gateway.payment_on_its_way(out_trade_no=out_trade_no)
        for gateway in _enabled().values()
    )


def gateway_default() -> Gateway | None:
    """The first enabled gateway: what a shopper who chose none pays with."""
    return next(iter(_enabled().values()), None)


__all__ = [
    "ClientKind",
    "Gateway",
    "GatewayError",
    "GatewayUnavailable",
    "HeadersOnRequest",
    "NotifyRejected",
    "ParsedNotify",
    "ParsedRefundNotify",
    "RefundNotifying",
    "RefundState",
    "gateway_default",
    "gateway_for_payment",
    "gateway_get",
    "gateways_all",
    "payment_on_its_way",
]
