from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from async_queue.exceptions import WorkerAborted
from async_queue.pool import Pool, worker_command
from async_queue.states import Outcome
from async_queue.worker import Worker


class Command(BaseCommand):
    help = (
        "Run due jobs, highest priority first, then oldest first. Without --forever, exits 0 "
        "once no job is due (for cron); with it, waits for new jobs (LISTEN/NOTIFY on "
        "PostgreSQL, polling on SQLite and behind a connection pooler). Run as many workers, "
        "on as many machines, as you like. SIGTERM/SIGINT finish the current job and stop; a "
        "second signal (or the end of --grace) aborts it (rolled back, requeued)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", type=int, metavar="N", help="Stop after N jobs.")
        parser.add_argument(
            "--queue",
            action="append",
            default=[],
            metavar="NAME",
            help="Only run jobs of this queue (repeatable).",
        )
        parser.add_argument(
            "--filter", default="", metavar="PREFIX", help="Only run jobs whose name starts so."
        )
        parser.add_argument("--database", default="default", help="Database alias of the queue.")
        parser.add_argument(
            "--forever", action="store_true", help="Keep running, polling for new jobs."
        )
        parser.add_argument(
            "--sleep",
            type=float,
            metavar="SECONDS",
            help="Polling interval with --forever (default: ASYNC_QUEUE['POLL_INTERVAL']).",
        )
        parser.add_argument(
            "--which",
            type=int,
            metavar="N",
            help="Accepted for django-async compatibility and ignored: claims use FOR UPDATE "
            "SKIP LOCKED, so any number of workers share the queue without partitioning it.",
        )
        parser.add_argument(
            "--outof", type=int, metavar="M", help="Accepted with --which and ignored."
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            metavar="SECONDS",
            help="With --forever, stop after this long (for process recyclers).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            metavar="SECONDS",
            help="After SIGTERM/SIGINT, abort a job still running after this long (rolled "
            "back, requeued), as a second signal does. Default: wait for it to finish.",
        )
        parser.add_argument(
            "--processes",
            type=int,
            metavar="N",
            help="With --forever, run and supervise N worker processes (restarting any that "
            "dies; SIGTERM stops them all gracefully).",
        )
        parser.add_argument(
            "--max-jobs",
            type=int,
            metavar="N",
            help="With --processes, recycle each worker process after N jobs.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] is not None and options["jobs"] < 1:
            raise CommandError("--jobs must be at least 1.")
        if options["sleep"] is not None and options["sleep"] <= 0:
            raise CommandError("--sleep must be a positive number of seconds.")
        if options["grace"] is not None and options["grace"] <= 0:
            raise CommandError("--grace must be a positive number of seconds.")
        if options["processes"] is not None or options["max_jobs"] is not None:
            self.run_pool(options)
            return
        worker = Worker(options["database"], queues=options["queue"], prefix=options["filter"])
        verbosity = options["verbosity"]

        def report(outcome: Outcome) -> None:
            if verbosity >= 1:
                self.stdout.write(str(outcome))

        try:
            with worker, worker.signals(options["grace"]):
                if options["forever"]:
                    worker.run_forever(
                        sleep=options["sleep"],
                        max_seconds=options["max_seconds"],
                        max_jobs=options["jobs"],
                        report=report,
                    )
                else:
                    worker.drain(options["jobs"], report)
        except DatabaseError as exc:
            raise CommandError(f"Database error, no more jobs run: {exc}") from exc
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        except WorkerAborted as exc:
            raise CommandError(
                f"Worker {exc}; the running job was rolled back and requeued."
            ) from None

    def run_pool(self, options: dict[str, Any]) -> None:
        processes, max_jobs = options["processes"], options["max_jobs"]
        if not options["forever"] or processes is None:
            raise CommandError("--processes (and --max-jobs) go with --forever.")
        if processes < 1 or (max_jobs is not None and max_jobs < 1):
            raise CommandError("--processes and --max-jobs must be at least 1.")
        code = Pool(worker_command(sys.argv, max_jobs), processes).run()
        if code:
            raise CommandError("A worker did not stop cleanly.", returncode=code)
