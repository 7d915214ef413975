from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from library import demo

WAITING = 3


class Command(BaseCommand):
    help = (
        "Report on the latest batch of demo jobs. Exits 0 once its quick and flaky jobs "
        f"succeeded and its failing job failed, {WAITING} while some are still on their way, "
        "1 if one ended otherwise."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        verdict, lines = demo.latest_batch_report()
        for line in lines:
            self.stdout.write(line)
        if verdict == "wrong":
            raise CommandError("The demo jobs did not end as expected.")
        if verdict == "waiting":
            sys.exit(WAITING)
