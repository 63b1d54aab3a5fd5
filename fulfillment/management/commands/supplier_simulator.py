"""supplier_simulator: run the bundled supplier simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from decimal import Decimal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fulfillment.simulator.server import (
    DEFAULT_APP_KEY,
    DEFAULT_BALANCE,
    DEFAULT_SECRET,
    Simulator,
)


class Command(BaseCommand):
    help = (
        "Run the bundled supplier simulator (docs/SUPPLIER_SIMULATOR.md): the generic "
        "recharge-supplier protocol over HTTP, with faults on demand."
    )
    # The simulator uses no models or settings worth checking; skipping the
    # checks lets it start even while the app's own configuration is half-done.
    requires_system_checks: list[str] = []  # noqa: RUF012 - Django's declared type

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8099)
        parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
        parser.add_argument("--secret", default=DEFAULT_SECRET)
        parser.add_argument(
            "--time-scale",
            type=float,
            default=1.0,
            help="multiplies the callback retry schedule (0.001: milliseconds)",
        )
        parser.add_argument("--balance", type=Decimal, default=DEFAULT_BALANCE)

    def handle(self, *args: Any, **options: Any) -> None:
        simulator = Simulator(
            host=options["host"],
            port=options["port"],
            app_key=options["app_key"],
            secret=options["secret"],
            time_scale=options["time_scale"],
            balance=options["balance"],
        ).start()
        stopping = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        # SIGTERM (docker stop, kill) and Ctrl-C both end in the same clean stop.
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        self.stdout.write(
            f"supplier simulator listening on {simulator.base_url} "
            f"(app_key {simulator.app_key})"
        )
        self.stdout.write(f"control API: {simulator.control_url}/ (health, report)")
        self.stdout.flush()
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            simulator.stop()
            self.stdout.write("supplier simulator stopped")
