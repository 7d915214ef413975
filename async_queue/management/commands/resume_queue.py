from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from async_queue.models import PauseKind
from async_queue.pausing import paused, resume_job, resume_queue


class Command(BaseCommand):
    help = (
        "Resume paused queues (or, with --job, job names): workers claim their jobs again "
        "(on PostgreSQL idle workers are woken at once; on SQLite within POLL_INTERVAL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Queue(s) to resume.")
        parser.add_argument(
            "--job",
            action="append",
            default=[],
            metavar="DOTTED.NAME",
            help="Resume this job name (repeatable).",
        )
        parser.add_argument("--all", action="store_true", help="Resume everything paused.")
        parser.add_argument("--database", default="default", help="Database alias of the queue.")

    def handle(self, *args: Any, **options: Any) -> None:
        queues, names, using = options["queues"], options["job"], options["database"]
        if options["all"]:
            pauses = paused(using)
            queues = [*queues, *(p.value for p in pauses if p.kind == PauseKind.QUEUE)]
            names = [*names, *(p.value for p in pauses if p.kind == PauseKind.NAME)]
            if not pauses and options["verbosity"] >= 1:
                self.stdout.write("Nothing is paused.")
        elif not (queues or names):
            raise CommandError(
                "Name what to resume: a queue (resume_queue emails), a job "
                "(resume_queue --job myapp.tasks.send_mail), or everything with --all."
            )
        missed = []
        try:
            for queue in queues:
                if resume_queue(queue, using=using):
                    self.say(options, f"Queue {queue!r} resumed.")
                else:
                    missed.append(f"queue {queue!r}")
            for name in names:
                if resume_job(name, using=using):
                    self.say(options, f"Job {name!r} resumed.")
                else:
                    missed.append(f"job {name!r}")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if missed:
            # Not an error (resuming is idempotent), but a typo must not pass unnoticed.
            still = ", ".join(f"{p.kind} {p.value!r}" for p in paused(using)) or "nothing"
            self.stderr.write(f"Not paused: {', '.join(missed)}. Paused now: {still}.")

    def say(self, options: dict[str, Any], line: str) -> None:
        if options["verbosity"] >= 1:
            self.stdout.write(line)
