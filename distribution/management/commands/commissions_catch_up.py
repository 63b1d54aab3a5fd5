"""`python manage.py commissions_catch_up [--days N]`: write commission a failed hook left out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from distribution.hooks import CATCH_UP_DAYS, commissions_catch_up


class Command(BaseCommand):
    help = (
        "Run the commission hooks again for delivered and refunded lines of credited"
        " orders (idempotent): what a failed hook left out is written, nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=CATCH_UP_DAYS,
            help=f"look at lines changed in the last N days (default {CATCH_UP_DAYS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        looked = commissions_catch_up(
            since=now - dt.timedelta(days=max(options["days"], 1)), now=now
        )
        self.stdout.write(f"lines looked at: {looked}")
