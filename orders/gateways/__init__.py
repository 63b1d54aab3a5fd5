"""Payment gateways behind one interface. Registered explicitly; no dynamic loading."""

from __future__ import annotations

from orders.gateways.base import Gateway, NotifyRejected, ParsedNotify
from orders.gateways.sandbox import SandboxGateway

_GATEWAYS: dict[str, Gateway] = {"sandbox": SandboxGateway()}


def gateway_get(name: str) -> Gateway | None:
    return _GATEWAYS.get(name)


def gateways_all() -> list[Gateway]:
    return list(_GATEWAYS.values())


__all__ = ["Gateway", "NotifyRejected", "ParsedNotify", "gateway_get", "gateways_all"]
