from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from async_queue.maintenance import health


class Command(BaseCommand):
    help = (
        "Print the queue's health as JSON: counts by status (finished ones capped), queued and "
        "running jobs by queue and name, the age of the oldest due job, failures in the last "
        "hour and an estimated time to drain. With "
        "--fail-if-older-than, exit 1 when the oldest due job waited longer (for monitoring)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="Database alias of the queue.")
        parser.add_argument(
            "--fail-if-older-than",
            type=float,
            metavar="SECONDS",
            help="Exit 1 if the oldest due job has waited longer than this.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = health(options["database"])
        self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        limit = options["fail_if_older_than"]
        age = report["oldest_due_age_seconds"]
        if limit is not None and age is not None and age > limit:
            raise CommandError(
                f"The oldest due job has waited {age:.1f}s, over the {limit:g}s limit."
            )
