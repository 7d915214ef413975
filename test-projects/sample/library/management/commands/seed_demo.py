from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from library import demo


class Command(BaseCommand):
    help = (
        "Create the superuser admin/admin and a catalogue of authors and books if missing; "
        "with --jobs, schedule a batch of demo jobs (quick, flaky, failing and slow ones); "
        "with --bigbook N, fill the BigBook table up to N rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", action="store_true", help="Also schedule the demo jobs.")
        parser.add_argument(
            "--bigbook",
            type=int,
            metavar="N",
            default=0,
            help="Add BigBook rows until there are N (e.g. 100000; takes a few seconds).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["bigbook"] < 0:
            raise CommandError("--bigbook must be 0 or more.")
        if demo.ensure_admin():
            self.stdout.write("Created the superuser admin (password: admin).")
        if created := demo.ensure_catalog():
            self.stdout.write(f"Created {len(demo.AUTHORS)} authors and {created} books.")
        if tags := demo.ensure_tags():
            self.stdout.write(f"Created {tags} tags.")
        if added := demo.ensure_bigbooks(options["bigbook"]):
            self.stdout.write(f"Added {added:,} BigBook rows.")
        if not options["jobs"]:
            return
        cancelled, scheduled = demo.schedule_demo_jobs()
        if cancelled:
            self.stdout.write(f"Cancelled {cancelled} demo job(s) still queued from earlier runs.")
        self.stdout.write(f"Scheduled {len(scheduled)} jobs:")
        for item in scheduled:
            self.stdout.write(f"  {item}")
