from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from async_queue.maintenance import health


class Command(BaseCommand):
    help = (
        "Print the queue's health as JSON: counts by status, queue and name, the age of the "
        "oldest due job, failures in the last hour and an estimated time to drain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="Database alias of the queue.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(health(options["database"]), indent=2, sort_keys=True))
