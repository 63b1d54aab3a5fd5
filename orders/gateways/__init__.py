"""Payment gateways behind one interface. Registered explicitly; no dynamic loading.

Only the gateways switched on in settings exist: a disabled one is unknown to
checkout, to the notify endpoint (404) and to every service. The registry is
built from settings on each call, each real gateway once per configuration (its
keys are parsed once), so tests that change settings see the change.
"""

from __future__ import annotations

from functools import lru_cache

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


def _enabled() -> dict[str, Gateway]:
    """The enabled gateways in the order checkout offers them."""
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
