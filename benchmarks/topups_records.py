"""topups.py's records: the seeded SKU, supplier and shoppers, orders placed and paid
through the services (or over HTTP), the timeline read back, and the checks of our
records against the supplier simulator's books."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from decimal import Decimal
from typing import Any

import benchlib
import httpx
from topups_procs import SIM_APP_KEY, SimulatorProcess, WorkerProcess

SKU_CODE = "BENCH-TOPUP"
PRODUCT_ID = "P-TX-VIP-MONTH"  # the simulator's QQ top-up, price 24.00
UNIT_COST = Decimal("24.00")
PRICE = Decimal("28.00")


def seed(*, simulator: SimulatorProcess, users: int) -> list[Any]:
    """The top-up SKU, the supplier and its mapping (through the services), shoppers."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from catalog.models import Platform, Product, Sku
    from fulfillment.selectors import topup_capacity_by_sku
    from fulfillment.services import supplier_map, supplier_refresh, supplier_register

    platform = Platform.objects.create(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    product = Product.objects.create(
        platform=platform, name="腾讯视频 VIP 直充", slug="bench-topup"
    )
    Sku.objects.create(
        product=product,
        code=SKU_CODE,
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        face_value=Decimal("30.00"),
        price=PRICE,
        max_per_order=5,
    )
    supplier = supplier_register(
        name="sim",
        base_url=simulator.base_url,
        app_key=SIM_APP_KEY,
        secret=simulator.secret,
    )
    mapping = supplier_map(
        sku_code=SKU_CODE, supplier_name="sim", product_id=PRODUCT_ID, cost=UNIT_COST
    )
    # Checkout sells a top-up only while a supplier can take it, as its last
    # refresh (beat, every 5 minutes) reported: refresh once, as beat would.
    supplier_refresh(supplier_id=supplier.pk)
    if not topup_capacity_by_sku(sku_ids=[mapping.sku_id]).get(mapping.sku_id):
        raise SystemExit(f"the simulator's refresh gave no capacity: {supplier}")
    User = get_user_model()
    unusable = make_password(None)
    return list(
        User.objects.bulk_create(
            User(username=f"topup{i}", email=f"topup{i}@example.com", password=unusable)
            for i in range(users)
        )
    )


def orders_place(users: list[Any], *, first_account: int) -> list[Any]:
    """One pending top-up order per user, through the checkout service (not timed)."""
    from orders.services import order_place

    return [
        order_place(
            user=user,
            sku_code=SKU_CODE,
            quantity=1,
            recharge_account=str(first_account + i),
        )
        for i, user in enumerate(users)
    ]


def notify(order: Any, trade_no: str) -> dict[str, str]:
    from orders.gateways import sandbox

    return sandbox.notify_fields(
        out_trade_no=order.number,
        trade_no=trade_no,
        amount=order.total_amount,
        status=sandbox.TRADE_SUCCESS,
    )


def pay_backlog(orders: list[Any], *, tag: str) -> float:
    """Pay through the notify service in this process; each commit queues its task."""
    from orders.services import payment_notify_handle

    t0 = time.perf_counter()
    for i, order in enumerate(orders):
        result = payment_notify_handle(
            gateway_name="sandbox", fields=notify(order, f"BENCH{tag}B{i}")
        )
        if result.outcome != "paid":
            raise SystemExit(f"paying {order.number}: {result.outcome}")
    return time.perf_counter() - t0


def lines_delivered(order_ids: list[int]) -> int:
    from orders.models import OrderLine

    return OrderLine.objects.filter(
        order_id__in=order_ids, status=OrderLine.Status.DELIVERED
    ).count()


def wait_delivered(
    order_ids: list[int], *, timeout: float, worker: WorkerProcess
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lines_delivered(order_ids) == len(order_ids):
            return True
        if worker.exited():
            raise SystemExit(f"worker died:\n{worker.log_tail()}")
        time.sleep(0.05)
    return False


def timeline(order_ids: list[int]) -> list[dict[str, Any]]:
    """Per top-up: paid, claimed (attempt created), accepted, delivered, number."""
    from fulfillment.models import SupplierAttempt
    from orders.models import Payment

    paid = dict(
        Payment.objects.filter(order_id__in=order_ids).values_list(
            "order_id", "created_at"
        )
    )
    rows = []
    for a in SupplierAttempt.objects.filter(
        topup__order_line__order_id__in=order_ids
    ).select_related("topup__order_line"):
        line = a.topup.order_line
        rows.append(
            {
                "order_id": line.order_id,
                "number": a.customer_order_no,
                "paid": paid.get(line.order_id),
                "claimed": a.created_at,
                "placed": a.placed_at,
                "delivered": line.delivered_at,
                "steps": a.topup.steps,
            }
        )
    return rows


def _span(rows: list[dict[str, Any]], start: str, end: str) -> list[float]:
    return [
        (r[end] - r[start]).total_seconds()
        for r in rows
        if r[start] is not None and r[end] is not None
    ]


def verify(
    order_ids: list[int], report: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Our records and the supplier's books agree; nothing was bought twice."""
    from fulfillment.models import SupplierAttempt, TopUp, TopUpEvent
    from orders.models import Order, OrderLine

    n = len(order_ids)
    ours = {r["number"] for r in rows}
    placed = report["orders"]
    out: dict[str, Any] = {
        "topups": n,
        "attempts": len(rows),
        "supplier_orders": len(placed),
        "supplier_orders_ours": len(ours & set(placed)),
        "placed_more_than_once": sum(
            1 for o in placed.values() if o["placements"] != 1
        ),
        "supplier_not_success": sum(
            1 for o in placed.values() if o["state"] != "success"
        ),
        "unplaced": len(report.get("unplaced") or {}),
        "spent": report["totals"]["spent"],
        "lines_delivered": OrderLine.objects.filter(
            order_id__in=order_ids, status=OrderLine.Status.DELIVERED
        ).count(),
        "orders_delivered": Order.objects.filter(
            pk__in=order_ids, status=Order.Status.DELIVERED
        ).count(),
        "topups_succeeded": TopUp.objects.filter(
            order_line__order_id__in=order_ids, status=TopUp.Status.SUCCEEDED
        ).count(),
        "attempts_succeeded": SupplierAttempt.objects.filter(
            topup__order_line__order_id__in=order_ids,
            status=SupplierAttempt.Status.SUCCEEDED,
        ).count(),
        "refused_3002": TopUpEvent.objects.filter(response__code=3002).count(),
        "callbacks": len(report["callbacks"]),
        "callbacks_not_success": sum(
            1 for c in report["callbacks"] if not c["answered_success"]
        ),
        "callback_retries": sum(1 for c in report["callbacks"] if c["attempt"] > 1),
    }
    mismatched = 0
    attempts = {
        a.customer_order_no: a
        for a in SupplierAttempt.objects.filter(
            customer_order_no__in=list(placed)
        ).select_related("topup")
    }
    for number, order in placed.items():
        attempt = attempts.get(number)
        if attempt is None or (
            order["product_id"],
            order["charge_account"],
            order["buy_num"],
        ) != (
            attempt.product_id,
            attempt.topup.recharge_account,
            attempt.topup.quantity,
        ):
            mismatched += 1
    out["supplier_orders_not_as_recorded"] = mismatched
    problems = []
    expect_n = {
        "attempts": n,
        "supplier_orders": n,
        "supplier_orders_ours": n,
        "lines_delivered": n,
        "orders_delivered": n,
        "topups_succeeded": n,
        "attempts_succeeded": n,
        "callbacks": n,
    }
    for key, want in expect_n.items():
        if out[key] != want:
            problems.append(f"{key} {out[key]} != {want}")
    for key in (
        "placed_more_than_once",
        "supplier_not_success",
        "unplaced",
        "refused_3002",
        "callbacks_not_success",
        "supplier_orders_not_as_recorded",
    ):
        if out[key]:
            problems.append(f"{key} {out[key]}")
    if Decimal(out["spent"]) != UNIT_COST * n:
        problems.append(f"spent {out['spent']} != {UNIT_COST * n}")
    # The simulator stamps an order in whole seconds, just before it answers: our
    # acceptance time must fall in that second (or just after, across a boundary).
    skew = []
    for r in rows:
        sim = placed.get(r["number"])
        if sim and r["placed"] is not None:
            created = dt.datetime.fromisoformat(sim["created_at"])
            skew.append((r["placed"] - created).total_seconds())
    out["accepted_minus_supplier_created_s"] = [min(skew), max(skew)] if skew else None
    if skew and (min(skew) < -0.05 or max(skew) > 1.5):
        problems.append(f"supplier created_at vs our accept out of range: {skew[:3]}")
    out["ok"] = not problems
    out["problems"] = problems
    return out


def callback_pace(report: dict[str, Any], numbers: set[str]) -> dict[str, float]:
    """How fast the simulator's callbacks for the drained top-ups went out.

    The simulator sends callbacks from one thread, one at a time; while a backlog
    waits, the gap between two sends is the time one callback takes.
    """
    sent = sorted(
        dt.datetime.fromisoformat(c["at"])
        for c in report["callbacks"]
        if c["customer_order_no"] in numbers
    )
    if len(sent) < 2:
        return {}
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    span = (sent[-1] - sent[0]).total_seconds()
    return {
        "per_s": (len(sent) - 1) / span if span else float("nan"),
        "gap_ms_p50": benchlib.median(gaps) * 1000,
    }


def pay_paced(orders: list[Any], *, rate: float, port: int, tag: str) -> int:
    """POST the signed notifies to gunicorn, one every 1/rate s (open loop)."""
    errors = 0
    interval = 1.0 / rate
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        start = time.monotonic()
        for i, order in enumerate(orders):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            response = client.post(
                "/payments/notify/sandbox/", data=notify(order, f"BENCH{tag}P{i}")
            )
            if response.status_code != 200 or response.text.strip() != "success":
                errors += 1
    return errors
