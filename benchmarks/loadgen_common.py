"""loadgen.py's shared parts: the order budget, the tally, the client threads."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class Budget:
    """A shared order budget: stop at the deadline or after `limit` attempts."""

    def __init__(self, *, limit: int, seconds: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + seconds
        self.taken = 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.taken >= self.limit or time.monotonic() >= self.deadline:
                return False
            self.taken += 1
            return True


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.latencies: list[float] = []  # whole order, seconds
        self.steps: dict[str, list[float]] = {}
        self.first_errors: list[str] = []
        # "<step> <name>": the cookies the server set, e.g. a device cookie per checkout
        self.cookies_set: Counter[str] = Counter()
        self.backend_cpu = 0.0  # raw mode: CPU seconds of our PostgreSQL backends

    def add(
        self,
        outcome: str,
        *,
        latency: float | None = None,
        steps: dict[str, float] | None = None,
        error: str = "",
    ) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if latency is not None:
                self.latencies.append(latency)
            for name, value in (steps or {}).items():
                self.steps.setdefault(name, []).append(value)
            if error and len(self.first_errors) < 10:
                self.first_errors.append(error)


def _run_threads(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    threads = [
        threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
