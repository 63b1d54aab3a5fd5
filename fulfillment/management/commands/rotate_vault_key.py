"""rotate_vault_key: re-encrypt every code under the newest key in VAULT_KEYS; resumable."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fulfillment.models import CardCode
from fulfillment.services import ROTATE_CHUNK, vault_rotate
from fulfillment.vault import newest_key_id


class Command(BaseCommand):
    help = "Re-encrypt every card code under the newest vault key, in committed chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=ROTATE_CHUNK)
        parser.add_argument(
            "--max-chunks", type=int, default=None, help="stop after this many chunks"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        newest = newest_key_id()
        done = vault_rotate(
            chunk_size=options["chunk_size"], max_chunks=options["max_chunks"]
        )
        left = CardCode.objects.exclude(key_id=newest).count()
        self.stdout.write(f"re-encrypted {done}, remaining under older keys {left}")
