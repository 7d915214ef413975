from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from library import demo


class Command(BaseCommand):
    help = (
        "Create the superuser admin/admin and a catalogue of authors and books if missing; "
        "with --jobs, schedule a batch of demo jobs (quick, flaky, failing and slow ones)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", action="store_true", help="Also schedule the demo jobs.")

    def handle(self, *args: Any, **options: Any) -> None:
        if demo.ensure_admin():
            self.stdout.write("Created the superuser admin (password: admin).")
        if created := demo.ensure_catalog():
            self.stdout.write(f"Created {len(demo.AUTHORS)} authors and {created} books.")
        if not options["jobs"]:
            return
        cancelled, scheduled = demo.schedule_demo_jobs()
        if cancelled:
            self.stdout.write(f"Cancelled {cancelled} demo job(s) still queued from earlier runs.")
        self.stdout.write(f"Scheduled {len(scheduled)} jobs:")
        for item in scheduled:
            self.stdout.write(f"  {item}")
