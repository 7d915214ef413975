from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from async_queue.exceptions import WorkerAborted
from async_queue.models import JobError
from async_queue.pool import Pool, worker_command
from async_queue.states import Outcome
from async_queue.worker import Worker

# The exit status after a second signal (or the end of --grace) aborted the running job.
EXIT_ABORTED = 1

# The least level of the records the command's own handler shows, by verbosity (-v 0:
# none; -v 3: DEBUG).
LOG_LEVELS = {1: logging.WARNING, 2: logging.INFO}


class _NoEvents(logging.Filter):
    """Drops the ``async_queue.events`` records: one per lifecycle event, structured for
    a project's log pipeline, they repeat what the line per job and the error say."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("async_queue.events")


@contextlib.contextmanager
def command_logging(verbosity: int, stream: TextIO) -> Iterator[None]:
    """Show the ``async_queue`` loggers' records on ``stream`` as ``verbosity`` asks, when
    the project's ``LOGGING`` routes them nowhere.

    Without a handler, Python's last-resort handler prints every warning and error to
    stderr whatever the verbosity: two lines for a failed job even with ``-v 0``. A
    project that configured a handler for them keeps its own routing.
    """
    logger = logging.getLogger("async_queue")
    if logger.hasHandlers():
        yield
        return
    handler: logging.Handler
    previous = logger.level
    if verbosity <= 0:
        handler = logging.NullHandler()  # silent, and the last-resort handler stays out
    else:
        level = LOG_LEVELS.get(verbosity, logging.DEBUG)
        handler = logging.StreamHandler(stream)
        handler.setLevel(level)
        handler.addFilter(_NoEvents())
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


WORKER_ABORTED = f"{WorkerAborted.__module__}.{WorkerAborted.__qualname__}"


def aborted_job(worker: Worker) -> int | None:
    """The job the abort rolled back and requeued: its error row names this worker."""
    with contextlib.suppress(DatabaseError):
        return (
            JobError.objects.using(worker.using)
            .filter(worker=worker.worker_id, exception=WORKER_ABORTED)
            .order_by("-pk")
            .values_list("job_id", flat=True)
            .first()
        )
    return None


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
        with command_logging(options["verbosity"], sys.stderr):
            if options["processes"] is not None or options["max_jobs"] is not None:
                self.run_pool(options)
            else:
                self.run_worker(options)

    def run_worker(self, options: dict[str, Any]) -> None:
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
            # The stop the operator asked for, not a crash: one plain line, no
            # "CommandError:" prefix, and the documented status.
            job_id = aborted_job(worker)
            job = "the running job" if job_id is None else f"job {job_id}"
            message = f"Stopped: {job} was interrupted, rolled back and requeued ({exc})."
            self.stderr.write(message, style_func=lambda text: text)
            sys.exit(EXIT_ABORTED)

    def run_pool(self, options: dict[str, Any]) -> None:
        processes, max_jobs = options["processes"], options["max_jobs"]
        if not options["forever"] or processes is None:
            raise CommandError("--processes (and --max-jobs) go with --forever.")
        if processes < 1 or (max_jobs is not None and max_jobs < 1):
            raise CommandError("--processes and --max-jobs must be at least 1.")
        code = Pool(worker_command(sys.argv, max_jobs), processes).run()
        if code:
            raise CommandError("A worker did not stop cleanly.", returncode=code)
