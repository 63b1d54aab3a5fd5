"""The simulated supplier's books: catalog, balance, orders, nonces and faults.

Everything lives in memory behind one lock, so the handler threads, the
callback thread and the control API see one consistent supplier. Business
rules follow supplier-protocol.md; rejections raise `ApiError` carrying the
protocol's code, which the server turns into a signed reply.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fulfillment.simulator.callbacks import CallbackOrder
from fulfillment.simulator.faults import FaultBook, Settings
from fulfillment.simulator.wire import (
    ACCOUNT_PATTERNS,
    CENT,
    DEFAULT_CATALOG,
    DEFAULT_PROCESSING_SECONDS,
    ApiError,
    Order,
    Product,
    card_secret_corrupt,
    money,
    now_iso,
    parse_place_biz,
    text_field,
)
from fulfillment.suppliers import protocol

NONCE_TTL_SECONDS = 24 * 3600


class SimulatorState:
    """All of the supplier's state; every public method takes the lock."""

    def __init__(
        self,
        *,
        app_key: str,
        secret: str,
        balance: Decimal,
        processing_seconds: float = DEFAULT_PROCESSING_SECONDS,
    ) -> None:
        self.lock = threading.RLock()
        self._initial_app = (app_key, secret)
        self._initial_balance = balance
        self._initial_processing = processing_seconds
        self._order_seq = 0
        self.reset()

    def reset(self) -> None:
        """Forget orders, nonces, faults and callbacks; restore catalog, balance and apps."""
        with self.lock:
            app_key, secret = self._initial_app
            self.apps: dict[str, tuple[str, bool]] = {app_key: (secret, True)}
            self.products = {p.product_id: p for p in DEFAULT_CATALOG}
            self.balance = self._initial_balance
            self.orders: dict[tuple[str, str], Order] = {}
            self.pending: set[tuple[str, str]] = set()
            self.placements: dict[tuple[str, str], int] = {}
            self.nonces: dict[tuple[str, str], float] = {}
            self.invalid_accounts: set[str] = set()
            self.card_numbers: set[str] = set()
            self.callbacks: list[dict[str, Any]] = []
            self.faults = FaultBook(processing_seconds=self._initial_processing)

    # -- requests ---------------------------------------------------------
    def app_get(self, app_key: Any) -> tuple[str, bool] | None:
        """(secret, enabled) for a known app_key, else None."""
        with self.lock:
            return self.apps.get(app_key) if isinstance(app_key, str) else None

    def nonce_use(self, app_key: str, nonce: str) -> bool:
        """Record a nonce; False when this app used it within the last 24 h."""
        now = time.time()
        with self.lock:
            if len(self.nonces) > 10_000:  # prune now and then, not on every call
                self.nonces = {
                    k: t for k, t in self.nonces.items() if now - t < NONCE_TTL_SECONDS
                }
            seen = self.nonces.get((app_key, nonce))
            if seen is not None and now - seen < NONCE_TTL_SECONDS:
                return False
            self.nonces[(app_key, nonce)] = now
            return True

    def fault_take(self, fault: str, method: str, biz: dict[str, Any]) -> bool:
        """Whether this request gets `fault` (one use of a counted rule is consumed)."""
        with self.lock:
            return self.faults.take(fault, method, biz)

    def settings_get(self) -> Settings:
        with self.lock:
            return replace(self.faults.settings)

    def placement_note(self, app_key: str, customer_order_no: Any) -> None:
        """Count a verified placement request for its number, whatever comes of it."""
        if isinstance(customer_order_no, str) and customer_order_no:
            with self.lock:
                key = (app_key, customer_order_no)
                self.placements[key] = self.placements.get(key, 0) + 1

    def product_list(self) -> dict[str, Any]:
        with self.lock:
            return {"products": [p.as_wire() for p in self.products.values()]}

    def balance_get(self) -> dict[str, Any]:
        with self.lock:
            return {"balance": money(self.balance)}

    def order_get(self, app_key: str, biz: dict[str, Any]) -> dict[str, Any]:
        number = text_field(
            biz, "customer_order_no", max_len=protocol.CUSTOMER_ORDER_NO_MAX
        )
        with self.lock:
            order = self.orders.get((app_key, number))
            if order is None:
                raise ApiError(protocol.ORDER_NOT_FOUND, "order not found")
            return order.as_wire()

    def place(self, app_key: str, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        """order.direct.add / order.card.add. Idempotent on (app_key, customer_order_no).

        Raises ApiError: 1101, 2001-2004, 3001, 3002.
        """
        parsed = parse_place_biz(method, biz)
        biz_key = json.dumps(parsed, sort_keys=True)
        key = (app_key, parsed["customer_order_no"])
        with self.lock:
            existing = self.orders.get(key)
            if existing is not None:
                if existing.biz_key != biz_key:
                    raise ApiError(
                        protocol.ORDER_NO_REUSED,
                        "customer_order_no already used with a different biz",
                    )
                return existing.as_wire()
            product = self._product_check(parsed)
            cost = product.price * parsed["buy_num"]
            if self.balance < cost:
                raise ApiError(protocol.INSUFFICIENT_BALANCE, "insufficient balance")
            order = self._order_create(app_key, method, parsed, product, biz_key)
            self.balance -= cost
            if product.stock is not None:
                self.products[product.product_id] = replace(
                    product, stock=product.stock - order.buy_num
                )
            self.orders[key] = order
            self.pending.add(key)
            return order.as_wire()

    def _product_check(self, parsed: dict[str, Any]) -> Product:
        product = self.products.get(parsed["product_id"])
        if product is None:
            raise ApiError(protocol.UNKNOWN_PRODUCT, "unknown product")
        if product.type != parsed["kind"]:
            raise ApiError(
                protocol.INVALID_PARAMETER,
                f"product is a {product.type} product; use order.{product.type}.add",
            )
        if product.status != "on":
            raise ApiError(protocol.PRODUCT_OFF_SHELF, "product off shelf")
        if product.type == "direct":
            account = parsed["charge_account"]
            pattern = ACCOUNT_PATTERNS.get(product.account_kind)
            if account in self.invalid_accounts or (
                pattern and not pattern.fullmatch(account)
            ):
                raise ApiError(
                    protocol.CHARGE_ACCOUNT_INVALID, "charge account invalid"
                )
        if product.stock is not None and product.stock < parsed["buy_num"]:
            raise ApiError(protocol.OUT_OF_STOCK, "out of stock")
        if parsed["max_price"] is not None and product.price > Decimal(
            parsed["max_price"]
        ):
            raise ApiError(protocol.INVALID_PARAMETER, "price above max_price")
        return product

    def _order_create(
        self,
        app_key: str,
        method: str,
        parsed: dict[str, Any],
        product: Product,
        biz_key: str,
    ) -> Order:
        flags = self.faults.take_order_faults(method, parsed)
        self._order_seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        now = time.monotonic()
        processing = self.faults.processing_seconds
        return Order(
            order_id=f"SIM{stamp}{self._order_seq:08d}",
            app_key=app_key,
            customer_order_no=parsed["customer_order_no"],
            product_id=product.product_id,
            kind=product.type,
            charge_account=parsed["charge_account"],
            buy_num=parsed["buy_num"],
            price=product.price,
            notify_url=parsed["notify_url"],
            biz_key=biz_key,
            created_at=now_iso(),
            due=now + processing,
            processing_at=now + processing / 4,
            forced_state=protocol.FAILED if "fail_next" in flags else protocol.SUCCESS,
            fail_reason=self.faults.fail_reason if "fail_next" in flags else "",
            flags=flags,
        )

    # -- settlement ---------------------------------------------------------
    def advance(self) -> list[CallbackOrder]:
        """Move due orders along; returns the callbacks owed for newly terminal ones."""
        now = time.monotonic()
        owed: list[CallbackOrder] = []
        with self.lock:
            for key in list(self.pending):
                order = self.orders[key]
                if order.state == protocol.UNTREATED and now >= order.processing_at:
                    order.state = protocol.PROCESSING
                if now >= order.due:
                    self._settle(order)
                    self.pending.discard(key)
                    if "no_callback" not in order.flags:
                        owed.append(self._callback_order(order))
        return owed

    def _settle(self, order: Order) -> None:
        order.state = order.forced_state
        order.finished_at = now_iso()
        if order.state == protocol.FAILED:
            # A failed order costs nothing: refund it and put the stock back.
            self.balance += order.price * order.buy_num
            product = self.products.get(order.product_id)
            if product is not None and product.stock is not None:
                self.products[product.product_id] = replace(
                    product, stock=product.stock + order.buy_num
                )
        elif order.kind == "card":
            order.cards = [self._card(order) for _ in range(order.buy_num)]

    def _card(self, order: Order) -> dict[str, str]:
        number = "".join(secrets.choice(string.digits) for _ in range(16))
        while number in self.card_numbers:
            number = "".join(secrets.choice(string.digits) for _ in range(16))
        self.card_numbers.add(number)
        plaintext = "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)
        )
        secret = self.apps.get(order.app_key, ("", True))[0]
        envelope = (
            card_secret_corrupt()
            if "corrupt_cards" in order.flags
            else protocol.card_secret_encrypt(plaintext, secret)
        )
        expires = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
        return {"number": number, "secret": envelope, "expires": expires}

    def _callback_order(self, order: Order) -> CallbackOrder:
        return CallbackOrder(
            app_key=order.app_key,
            secret=self.apps.get(order.app_key, ("", True))[0],
            notify_url=order.notify_url,
            order_id=order.order_id,
            customer_order_no=order.customer_order_no,
            state=order.state,
            fail_reason=order.fail_reason if order.state == protocol.FAILED else "",
            finished_at=order.finished_at,
            duplicate="duplicate_callbacks" in order.flags,
            out_of_order="out_of_order_callbacks" in order.flags,
            bad_signature="bad_callback_signature" in order.flags,
        )

    def order_complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Control: settle a pending order now, as `success` or `failed`."""
        state = payload.get("state", protocol.SUCCESS)
        if state not in protocol.TERMINAL_STATES:
            raise ValueError("state must be success or failed")
        with self.lock:
            key = (
                str(payload.get("app_key") or self._initial_app[0]),
                str(payload.get("customer_order_no")),
            )
            order = self.orders.get(key)
            if order is None:
                raise ValueError("no such order")
            if order.state not in protocol.TERMINAL_STATES:
                order.due = 0.0
                order.forced_state = state
                if state == protocol.FAILED:
                    order.fail_reason = str(
                        payload.get("fail_reason") or self.faults.fail_reason
                    )
            return order.as_wire()

    # -- control ------------------------------------------------------------
    def product_upsert(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Control: add a product or change some of its fields."""
        product_id = payload.get("product_id")
        if not isinstance(product_id, str) or not product_id:
            raise ValueError("product_id is required")
        with self.lock:
            current = self.products.get(product_id)
            if current is None:
                current = Product(
                    product_id, product_id, "direct", Decimal("10.00"), Decimal("9.00")
                )
            changes: dict[str, Any] = {}
            for name in ("name", "type", "status", "account_kind"):
                if name in payload:
                    changes[name] = str(payload[name])
            for name in ("face_value", "price"):
                if name in payload:
                    changes[name] = Decimal(str(payload[name])).quantize(CENT)
            if "stock" in payload:
                changes["stock"] = (
                    None if payload["stock"] is None else int(payload["stock"])
                )
            product = replace(current, **changes)
            if product.type not in ("direct", "card") or product.status not in (
                "on",
                "off",
            ):
                raise ValueError("type must be direct|card and status on|off")
            if product.stock is not None and product.stock < 0:
                raise ValueError("stock must be >= 0 or null (unlimited)")
            if product.price <= 0 or product.face_value <= 0:
                raise ValueError("face_value and price must be positive")
            if product.account_kind and product.account_kind not in ACCOUNT_PATTERNS:
                raise ValueError(
                    f"account_kind must be one of {sorted(ACCOUNT_PATTERNS)} or empty"
                )
            self.products[product_id] = product
            return {
                **product.as_wire(),
                "stock_count": product.stock,
                "account_kind": product.account_kind,
            }

    def faults_apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Control: change faults; also the one-off balance/stock/product_status sets."""
        with self.lock:
            immediate = self.faults.apply(payload, known_products=set(self.products))
            if "balance" in immediate:
                self.balance = immediate["balance"]
            for product_id, stock in immediate.get("stock", {}).items():
                self.products[product_id] = replace(
                    self.products[product_id], stock=stock
                )
            for product_id, status in immediate.get("product_status", {}).items():
                self.products[product_id] = replace(
                    self.products[product_id], status=status
                )
            return self.faults.describe()

    def app_upsert(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Control: add an app or change its secret / enabled flag (1004 when disabled)."""
        app_key = payload.get("app_key")
        if not isinstance(app_key, str) or not app_key:
            raise ValueError("app_key is required")
        with self.lock:
            secret, enabled = self.apps.get(app_key, ("", True))
            secret = str(payload.get("secret", secret))
            if not secret:
                raise ValueError("secret is required for a new app")
            enabled = bool(payload.get("enabled", enabled))
            self.apps[app_key] = (secret, enabled)
            return {"app_key": app_key, "enabled": enabled}

    def accounts_mark(self, accounts: list[str], *, invalid: bool) -> list[str]:
        """Control: make charge accounts fail with 2004 (or stop doing so)."""
        with self.lock:
            if invalid:
                self.invalid_accounts.update(accounts)
            else:
                self.invalid_accounts.difference_update(accounts)
            return sorted(self.invalid_accounts)

    def faults_describe(self) -> dict[str, Any]:
        with self.lock:
            return self.faults.describe()

    def callback_record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.callbacks.append(entry)

    def report(self) -> dict[str, Any]:
        """What the supplier received: orders per number with placement counts, callbacks, totals."""
        with self.lock:
            primary = self._initial_app[0]
            orders: dict[str, Any] = {}
            spent = Decimal(0)
            for (app_key, number), order in self.orders.items():
                if order.state != protocol.FAILED:
                    spent += order.price * order.buy_num
                orders[number if app_key == primary else f"{app_key}/{number}"] = {
                    "order_id": order.order_id,
                    "app_key": app_key,
                    "product_id": order.product_id,
                    "charge_account": order.charge_account,
                    "buy_num": order.buy_num,
                    "price": money(order.price),
                    "state": order.state,
                    "fail_reason": order.fail_reason
                    if order.state == protocol.FAILED
                    else "",
                    "placements": self.placements.get((app_key, number), 0),
                    "created_at": order.created_at,
                    "finished_at": order.finished_at,
                }
            unplaced = {
                number if app_key == primary else f"{app_key}/{number}": count
                for (app_key, number), count in self.placements.items()
                if (app_key, number) not in self.orders
            }
            return {
                "orders": orders,
                "unplaced": unplaced,
                "balance": money(self.balance),
                "callbacks": [dict(entry) for entry in self.callbacks],
                "totals": {
                    "orders_created": len(self.orders),
                    "placements": sum(self.placements.values()),
                    "spent": money(spent),
                },
            }
