from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from library import demo


class Command(BaseCommand):
    help = (
        "Create the superuser admin/admin and a catalogue of authors and books if missing; "
        "with --jobs, schedule a batch of demo jobs (quick, flaky and failing ones); "
        "with --bigbook N, fill the BigBook table up to N rows. -v 2 lists the jobs."
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
        verbosity = options["verbosity"]
        done = []
        if demo.ensure_admin():
            done.append("created the superuser admin (password: admin)")
        if created := demo.ensure_catalog():
            done.append(f"created {len(demo.AUTHORS)} authors and {created} books")
        if tags := demo.ensure_tags():
            done.append(f"created {tags} tags")
        if added := demo.ensure_bigbooks(options["bigbook"]):
            done.append(f"added {added:,} BigBook rows")
        if options["jobs"]:
            cancelled, scheduled = demo.schedule_demo_jobs()
            if cancelled:
                done.append(f"cancelled {cancelled} demo job(s) still queued from earlier runs")
            done.append(f"scheduled {len(scheduled)} demo jobs")
        if verbosity >= 1:
            summary = "; ".join(done) if done else "nothing to do"
            self.stdout.write(summary[0].upper() + summary[1:] + ".")
        if verbosity >= 2 and options["jobs"]:
            for item in scheduled:
                self.stdout.write(f"  {item}")
