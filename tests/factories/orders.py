from __future__ import annotations

from orders.models import Order, SandboxTrade


def sandbox_trade_paid(order: Order, trade_no: str = "T1") -> SandboxTrade:
    """The sandbox gateway's own side of a paid trade, as its hosted page leaves it."""
    return SandboxTrade.objects.create(
        trade_no=trade_no,
        out_trade_no=order.number,
        subject="x",
        total_amount=order.total_amount,
        notify_url="http://127.0.0.1/",
        return_url="http://127.0.0.1/",
        status=SandboxTrade.Status.PAID,
    )
