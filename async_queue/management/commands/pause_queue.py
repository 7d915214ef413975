from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from async_queue.pausing import pause_job, pause_queue, paused


class Command(BaseCommand):
    help = (
        "Pause queues (or, with --job, job names): workers stop claiming their jobs at their "
        "next claim, running jobs finish, new jobs wait queued. The pause is stored in the "
        "database, so it holds for every worker and across restarts until resume_queue. "
        "--list shows what is paused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Queue(s) to pause.")
        parser.add_argument(
            "--job",
            action="append",
            default=[],
            metavar="DOTTED.NAME",
            help="Pause this declared job in every queue (repeatable).",
        )
        parser.add_argument("--reason", default="", help="Shown on the dashboard and in the admin.")
        parser.add_argument("--list", action="store_true", help="Show the pauses in force.")
        parser.add_argument("--database", default="default", help="Database alias of the queue.")

    def handle(self, *args: Any, **options: Any) -> None:
        queues, names, using = options["queues"], options["job"], options["database"]
        if not (queues or names or options["list"]):
            raise CommandError(
                "Name what to pause: a queue (pause_queue emails), a job "
                "(pause_queue --job myapp.tasks.send_mail), or show the pauses with --list."
            )
        try:
            for queue in queues:
                done = pause_queue(queue, reason=options["reason"], using=using)
                self.say(options, f"Queue {queue!r} {'paused' if done else 'was paused already'}.")
            for name in names:
                done = pause_job(name, reason=options["reason"], using=using)
                self.say(options, f"Job {name!r} {'paused' if done else 'was paused already'}.")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["list"]:
            self.show(using)

    def say(self, options: dict[str, Any], line: str) -> None:
        if options["verbosity"] >= 1:
            self.stdout.write(line)

    def show(self, using: str) -> None:
        pauses = paused(using)
        if not pauses:
            self.stdout.write("Nothing is paused.")
        for pause in pauses:
            by = f" by {pause.paused_by.get_username()}" if pause.paused_by else ""
            reason = f": {pause.reason}" if pause.reason else ""
            self.stdout.write(
                f"{pause.kind}\t{pause.value}\tsince {pause.paused_at.isoformat()}{by}{reason}"
            )
