from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from async_queue.maintenance import purge


class Command(BaseCommand):
    help = (
        "Delete succeeded and cancelled jobs that finished more than DAYS ago "
        "(failed ones too with --include-failed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--include-failed", action="store_true")
        parser.add_argument("--database", default="default", help="Database alias of the queue.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative.")
        deleted = purge(
            timedelta(days=options["older_than"]),
            include_failed=options["include_failed"],
            using=options["database"],
        )
        if options["verbosity"] >= 1:
            self.stdout.write(f"Deleted {deleted} finished job(s).")
