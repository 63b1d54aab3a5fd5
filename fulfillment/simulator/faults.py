"""The simulator's fault book: what to break, for which requests, how many times.

Kept apart from `state` so that module stays readable (STYLE.md: modules under
~400 lines). Not thread-safe on its own: `SimulatorState` calls it under its lock.

Counted faults apply to "the next N" matching requests (reply faults) or newly
created orders (order faults); `true` means every one until reset, `0`/`false`
clears the fault. Matchers in the same POST (`method`, `product_id`,
`charge_account`, `customer_order_no`) narrow the counted faults set with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PLACE_DIRECT = "order.direct.add"
PLACE_CARD = "order.card.add"
PLACE_METHODS = frozenset({PLACE_DIRECT, PLACE_CARD})
API_METHODS = frozenset(
    {"product.list", "account.balance", "order.get", PLACE_DIRECT, PLACE_CARD}
)

# Reply faults and the methods they hit unless the POST names `method`
# (None: every method). Order-shaped faults default to placements only.
REPLY_FAULTS: dict[str, frozenset[str] | None] = {
    "rate_limit": None,
    "malformed_reply": None,
    "unsigned_reply": None,
    "bad_reply_signature": None,
    "busy": PLACE_METHODS,
    "http_500_before_store": PLACE_METHODS,
    "http_500_after_store": PLACE_METHODS,
    "drop_reply_after_accept": PLACE_METHODS,
}
# Taken when an order is created; they shape its settlement and callbacks.
ORDER_FAULTS = frozenset(
    {
        "fail_next",
        "duplicate_callbacks",
        "out_of_order_callbacks",
        "bad_callback_signature",
        "no_callback",
        "corrupt_cards",
    }
)
MATCHERS = ("method", "product_id", "charge_account", "customer_order_no")
IMMEDIATE = ("balance", "stock", "product_status")
DEFAULT_FAIL_REASON = "上游充值失败 (simulated failure)"


@dataclass
class Settings:
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    processing_seconds: float = 0.2
    fail_reason: str = DEFAULT_FAIL_REASON
    drop_mode: str = "close"  # "close": reset the socket; "hang": wait, then close
    hang_seconds: float = 30.0
    retry_after: int = 1  # seconds, for 429 replies


@dataclass
class FaultRule:
    fault: str
    remaining: int | None  # None: until reset
    method: frozenset[str] | None
    product_id: str | None = None
    charge_account: str | None = None
    customer_order_no: str | None = None

    def matches(self, method: str, biz: dict[str, Any]) -> bool:
        if self.remaining == 0 or (
            self.method is not None and method not in self.method
        ):
            return False
        return all(
            wanted is None or biz.get(name) == wanted
            for name, wanted in (
                ("product_id", self.product_id),
                ("charge_account", self.charge_account),
                ("customer_order_no", self.customer_order_no),
            )
        )


def _count(name: str, value: Any) -> int | None:
    """`true` → unlimited (None), `false` → 0, else a non-negative int."""
    if value is True:
        return None
    if value is False:
        return 0
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(f"{name} must be a count (integer >= 0) or true/false")


def _is_stock(value: Any) -> bool:
    """A stock count: None (unlimited) or an integer >= 0."""
    if value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_status(value: Any) -> bool:
    return value in ("on", "off")


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return kind(value)


class FaultBook:
    """Settings plus counted fault rules."""

    def __init__(self, *, processing_seconds: float) -> None:
        self.settings = Settings(processing_seconds=processing_seconds)
        self.rules: list[FaultRule] = []

    @property
    def processing_seconds(self) -> float:
        return self.settings.processing_seconds

    @property
    def fail_reason(self) -> str:
        return self.settings.fail_reason

    def take(self, fault: str, method: str, biz: dict[str, Any]) -> bool:
        """Consume one use of `fault` for this request if a rule matches it."""
        for rule in self.rules:
            if rule.fault == fault and rule.matches(method, biz):
                if rule.remaining is not None:
                    rule.remaining -= 1
                return True
        return False

    def take_order_faults(self, method: str, biz: dict[str, Any]) -> frozenset[str]:
        return frozenset(f for f in ORDER_FAULTS if self.take(f, method, biz))

    def apply(
        self, payload: dict[str, Any], *, known_products: set[str]
    ) -> dict[str, Any]:
        """Validate the whole payload, then apply it. Returns the one-off sets for state.

        Raises ValueError naming the first bad field; nothing changes then.
        """
        unknown = set(payload) - set(REPLY_FAULTS) - ORDER_FAULTS - set(MATCHERS)
        unknown -= set(IMMEDIATE) | set(asdict(self.settings))
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        settings = self._settings_parse(payload)
        matchers = self._matchers_parse(payload)
        counted = {
            name: _count(name, payload[name])
            for name in (*REPLY_FAULTS, *sorted(ORDER_FAULTS))
            if name in payload
        }
        immediate = self._immediate_parse(payload, known_products)

        self.settings = settings
        for name, remaining in counted.items():
            if remaining == 0:
                self.rules = [r for r in self.rules if r.fault != name]
                continue
            methods = matchers.get("method")
            if methods is None:
                methods = None if name in ORDER_FAULTS else REPLY_FAULTS[name]
            self.rules.append(
                FaultRule(
                    fault=name,
                    remaining=remaining,
                    method=methods,
                    product_id=matchers.get("product_id"),
                    charge_account=matchers.get("charge_account"),
                    customer_order_no=matchers.get("customer_order_no"),
                )
            )
        return immediate

    def _settings_parse(self, payload: dict[str, Any]) -> Settings:
        values = asdict(self.settings)
        for name in ("latency_ms", "latency_jitter_ms", "retry_after"):
            if name in payload:
                values[name] = _number(name, payload[name], int)
        for name in ("processing_seconds", "hang_seconds"):
            if name in payload:
                values[name] = _number(name, payload[name], float)
        if "fail_reason" in payload:
            if (
                not isinstance(payload["fail_reason"], str)
                or not payload["fail_reason"]
            ):
                raise ValueError("fail_reason must be non-empty text")
            values["fail_reason"] = payload["fail_reason"]
        if "drop_mode" in payload:
            if payload["drop_mode"] not in ("close", "hang"):
                raise ValueError('drop_mode must be "close" or "hang"')
            values["drop_mode"] = payload["drop_mode"]
        return Settings(**values)

    @staticmethod
    def _matchers_parse(payload: dict[str, Any]) -> dict[str, Any]:
        matchers: dict[str, Any] = {}
        method = payload.get("method")
        if method is not None:
            methods = frozenset([method] if isinstance(method, str) else method)
            if not methods or not methods <= API_METHODS:
                raise ValueError(
                    f"method must name one or more of {sorted(API_METHODS)}"
                )
            matchers["method"] = methods
        for name in MATCHERS[1:]:
            if payload.get(name) is not None:
                if not isinstance(payload[name], str):
                    raise ValueError(f"{name} must be text")
                matchers[name] = payload[name]
        return matchers

    @staticmethod
    def _immediate_parse(payload: dict[str, Any], known: set[str]) -> dict[str, Any]:
        immediate: dict[str, Any] = {}
        if "balance" in payload:
            try:
                balance = Decimal(str(payload["balance"]))
            except InvalidOperation:
                raise ValueError("balance must be an amount") from None
            if not balance.is_finite() or balance < 0:
                raise ValueError("balance must be an amount >= 0")
            immediate["balance"] = balance
        for name, check in (("stock", _is_stock), ("product_status", _is_status)):
            if name not in payload:
                continue
            given = payload[name]
            if not isinstance(given, dict) or not set(given) <= known:
                raise ValueError(f"{name} must map known product ids to values")
            if not all(check(v) for v in given.values()):
                raise ValueError(f"{name} has an invalid value")
            immediate[name] = dict(given)
        return immediate

    def describe(self) -> dict[str, Any]:
        """The current settings and the counted rules still armed."""
        rules = []
        for rule in self.rules:
            if rule.remaining == 0:
                continue
            described = asdict(rule)
            described["method"] = None if rule.method is None else sorted(rule.method)
            rules.append(described)
        return {"settings": asdict(self.settings), "rules": rules}
