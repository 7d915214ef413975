"""The worker loop: claim -> run -> finish, one job at a time.

1. **Claim** (``Dialect.claim``): one committed statement marks the next due job
   ``running`` and counts the attempt.
2. **Run**: the job body and the success update commit together in one
   ``transaction.atomic()``. The success update is *fenced*: it only matches the
   row if it is still ``running`` under this worker's claim and attempt; if it
   matches nothing, the whole transaction (body included) rolls back.
3. **Finish a failure**: after the rollback, a separate transaction records a
   ``JobError`` and either requeues the job with backoff or marks it failed.

A job whose object locks are busy goes back to the queue for a moment (the
attempt not counted). A job running past its timeout is interrupted (SIGALRM,
and ``statement_timeout`` on PostgreSQL) and fails the attempt. A failing job
(any exception, ``sys.exit()`` included) never stops the worker.

Crash recovery: a worker holds a lease while it lives (``liveness.Lease``: a
``Worker`` row whose heartbeat a thread refreshes on a connection of its own, and
on a direct connection a session lock there); every ``RECOVERY_INTERVAL``
seconds, and when a drain starts, a worker requeues the running jobs of dead
workers (``Dialect.dead_workers``), counting the lost attempt (and its own, whose
failure it could not record when it lost its connection). A worker that was
declared lost registers again under a new name before its next claim.
The worker keeps its database connections between jobs whatever
``CONN_MAX_AGE`` says, closing only ones that broke.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, InterfaceError, OperationalError, connections, models
from django.db.models.functions import Now

from . import payloads, periodic
from .callables import resolve
from .conf import queue_settings
from .exceptions import (
    CompletionFenced,
    InvalidJobState,
    JobCancelled,
    JobNotAllowed,
    JobTimeout,
    ResultTooLarge,
    UnreadableArguments,
    WorkerAborted,
)
from .fields import UnreadableJSON
from .liveness import Lease
from .locks import take_job_locks
from .models import Job, JobError, Status
from .models import Worker as WorkerRow
from .progress import Reporter, _reporter
from .retries import retry_delay
from .signals import send_event
from .sql import ProgressStore, dialect

logger = logging.getLogger("async_queue.worker")

MESSAGE_MAX_CHARS = 2000
SUMMARY_MAX_CHARS = 500


class _LocksBusy(Exception):
    """The job's object locks are held elsewhere; it goes back to the queue."""


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt."""

    job_id: int
    name: str
    status: str  # succeeded, retrying, failed, deferred, aborted or fenced
    duration: float
    error: str = ""
    retry_in: float | None = None

    def __str__(self) -> str:
        line = f"job {self.job_id} {self.name} {self.status} after {self.duration:.3f}s"
        if self.error:
            line += f": {self.error}"
        if self.retry_in is not None:
            line += f" (next try in {self.retry_in:.1f}s)"
        return line


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def exception_path(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def format_traceback(exc: BaseException) -> str:
    """The traceback text (no frame locals), at most ``TRACEBACK_MAX_BYTES`` of UTF-8.

    A longer one keeps its head and tail around a note of how much was cut; the
    note counts against the limit, and no character is split.
    """
    text = "".join(traceback.format_exception(exc))
    limit = queue_settings.TRACEBACK_MAX_BYTES
    data = text.encode()
    if len(data) <= limit:
        return text
    note = "\n... [{} bytes cut] ...\n"
    budget = max(limit - len(note.format(len(data))), 0)
    head = budget // 4
    tail = budget - head
    kept_head = data[:head].decode(errors="ignore")
    kept_tail = data[len(data) - tail :].decode(errors="ignore")
    cut = len(data) - len(kept_head.encode()) - len(kept_tail.encode())
    return f"{kept_head}{note.format(cut)}{kept_tail}"


def _storable(result: Any) -> Any:
    """``result`` if it can be stored: JSON of at most ``MAX_RESULT_BYTES`` (see ``payloads``)."""
    try:
        # As the field writes it (ASCII, so characters are bytes).
        text = json.dumps(result, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"The job returned a {type(result).__name__}, which cannot be stored as JSON ({exc})."
        ) from None
    limit = queue_settings.MAX_RESULT_BYTES
    if len(text) > limit:
        raise ResultTooLarge(
            f"The job returned {len(text):,} bytes of JSON, over ASYNC_QUEUE['MAX_RESULT_BYTES'] "
            f"({limit:,}): return less (for example the id of a row or file that holds the "
            "output), or raise the setting."
        )
    # The rules schedule() applies to arguments: a value PostgreSQL refuses would
    # otherwise fail the completion UPDATE instead of naming the problem.
    payloads.check("The job's result", json.loads(text), error=TypeError)
    return result


def _unrunnable(job: Job) -> UnreadableArguments | None:
    """Why the row's arguments cannot be passed to its function, if they cannot."""
    for field, value, kind, expected in (
        ("args", job.args, list, "a JSON list"),
        ("kwargs", job.kwargs, dict, "a JSON object"),
    ):
        if isinstance(value, UnreadableJSON):
            problem = f"cannot be read: {value}"
        elif not isinstance(value, kind):
            problem = f"must be {expected}, not {type(value).__name__}"
        else:
            continue
        return UnreadableArguments(
            f"Job {job.pk}'s {field} {problem}. The row was not written by schedule() (forged, "
            "or written by an older version), so nothing was called: schedule the call again."
        )
    return None


class Worker:
    """Claims and runs jobs from one database; used by ``flush_queue`` and ``Job.execute()``."""

    def __init__(
        self,
        using: str = "default",
        *,
        queues: Sequence[str] = (),
        prefix: str = "",
        worker_id: str | None = None,
    ) -> None:
        self.using = using
        self.queues = tuple(queues)
        self.prefix = prefix
        self.worker_id = worker_id or default_worker_id()
        self.stopping = False
        self.current: Job | None = None
        self.jobs_done = 0  # attempts run to an end (not deferred)
        self.failures = 0  # attempts that failed
        self.liveness = self._lease()
        self._progress: ProgressStore | None = None
        self.sql = dialect(using)
        self.waiter = self.sql.waiter()
        self._next_recovery = 0.0
        self._next_periodic = 0.0
        self._trouble_since: float | None = None
        self._next_trouble_log = 0.0

    def _lease(self) -> Lease:
        return Lease(self.using, self.worker_id, queues=self.queues, snapshot=self._snapshot)

    def _snapshot(self) -> tuple[int | None, int, int]:
        """What the heartbeat reports: the current job, attempts done, attempts failed."""
        current = self.current
        return (None if current is None else current.pk), self.jobs_done, self.failures

    def _alive(self) -> None:
        """Before a claim: hold the lease, under a new name if the old one was declared lost."""
        if self.liveness.lost:
            old = self.worker_id
            self.liveness.release()
            self.worker_id = default_worker_id()
            self.liveness = self._lease()
            logger.info("Worker %s, declared lost, goes on as %s.", old, self.worker_id)
        self.liveness.ensure()
        self.waiter.polling = self.liveness.pooled
        self.sql.prepare_session(pooled=self.liveness.pooled)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the loop -----------------------------------------------------------------

    def drain(
        self, max_jobs: int | None = None, report: Callable[[Outcome], None] | None = None
    ) -> int:
        """Run due jobs until none is due (or ``max_jobs`` ran, or a stop); returns how many."""
        count = 0
        self.recover_if_due()
        self.periodic_if_due()
        while not self.stopping and (max_jobs is None or count < max_jobs):
            self._alive()
            job = self.sql.claim(self.worker_id, queues=self.queues, prefix=self.prefix)
            self._database_back()
            if job is None:
                break
            outcome = self.run(job)
            count += 1
            if report:
                report(outcome)
            self._keep_connections_healthy()
            # Also during a long backlog: a dead worker's job must not wait for it to end.
            self.recover_if_due()
        return count

    def run_forever(
        self,
        *,
        sleep: float | None = None,
        max_seconds: float | None = None,
        max_jobs: int | None = None,
        report: Callable[[Outcome], None] | None = None,
    ) -> int:
        """Drain, then wait for work, until stopped or a limit is reached.

        Idle, it waits on LISTEN (PostgreSQL: woken when a new job commits) for at
        most ``sleep`` seconds, so a job whose ``run_after`` passes is picked up
        within one interval; on SQLite it polls every ``sleep`` seconds.
        """
        interval = queue_settings.POLL_INTERVAL if sleep is None else sleep
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        count = 0
        try:
            while not self.stopping:
                remaining = None if max_jobs is None else max_jobs - count
                if remaining == 0:
                    break
                try:
                    ran = self.drain(remaining, report)
                    count += ran
                    left = None if deadline is None else deadline - time.monotonic()
                    if ran == 0 and (left is None or left > 0):
                        self._idle(interval if left is None else min(interval, left))
                except DatabaseError as exc:
                    self._database_trouble(exc)
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            self.close()
        return count

    def stop(self) -> None:
        """Finish the current job, then stop."""
        self.stopping = True

    @property
    def progress(self) -> ProgressStore:
        if self._progress is None:
            self._progress = self.sql.progress_store()
        return self._progress

    def close(self) -> None:
        """End this worker's lease and close its progress connection (no job running)."""
        with contextlib.suppress(DatabaseError):
            self.liveness.release()
        if self._progress is not None:
            self._progress.close()

    def _idle(self, seconds: float) -> None:
        # Wait in short slices so that a stop signal ends the wait quickly.
        end = time.monotonic() + max(seconds, 0)
        while not self.stopping and (left := end - time.monotonic()) > 0:
            if self.waiter.wait(min(left, 0.25)):
                return
            self.recover_if_due()
            if self.periodic_if_due():
                return

    def _database_trouble(self, exc: DatabaseError) -> None:
        # One traceback per outage, then one line after 1, 2, 4, ... (at most 60) seconds,
        # so that a long outage does not flood the logs; retried every half second.
        now = time.monotonic()
        if self._trouble_since is None:
            self._trouble_since, self._next_trouble_log = now, now + 1.0
            logger.exception("Database error in the worker loop; retrying.")
        elif now >= self._next_trouble_log:
            down = now - self._trouble_since
            self._next_trouble_log = now + min(max(down, 1.0), 60.0)
            error = next(iter(str(exc).splitlines()), "")
            logger.error("Database still unavailable after %.0fs; retrying: %s", down, error)
        self._keep_connections_healthy(force=True)
        end = now + 0.5
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.1)

    def _database_back(self) -> None:
        if self._trouble_since is not None:
            down = time.monotonic() - self._trouble_since
            logger.warning("Database available again after %.1fs; resuming.", down)
            self._trouble_since = None

    def _keep_connections_healthy(self, force: bool = False) -> None:
        # Unlike close_old_connections(), keep healthy connections whatever
        # CONN_MAX_AGE says: reconnecting per job costs more than the job.
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block:
                continue
            if force or (connection.errors_occurred and not connection.is_usable()):
                connection.close()

    @contextlib.contextmanager
    def signals(self, grace: float | None = None) -> Iterator[None]:
        """SIGTERM/SIGINT: the first finishes the current job, a second aborts it.

        With ``grace`` seconds, a job still running that long after the first signal
        is aborted as if the signal had come again (rolled back, requeued).
        """
        timers: list[threading.Timer] = []
        grace_over = threading.Event()

        def end_grace(signum: int) -> None:
            # Set before the signal is sent: the handler may run before this thread ends.
            grace_over.set()
            os.kill(os.getpid(), signum)

        def handle(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self.stopping and self.current is not None:
                if grace_over.is_set():  # the grace timer sent it
                    raise WorkerAborted(f"aborted by {name}: the {grace:g}s grace period ran out")
                raise WorkerAborted(f"aborted by {name}")
            if self.stopping:
                return
            if grace is not None and self.current is not None:
                logger.info("Stopping after the current job, or aborting it in %gs.", grace)
                timer = threading.Timer(grace, end_grace, (signum,))
                timer.daemon = True
                timers.append(timer)
                timer.start()
            else:
                logger.info("Stopping after the current job (send the signal again to abort it).")
            self.stop()

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for timer in timers:
                timer.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- periodic jobs ----------------------------------------------------------------

    def periodic_if_due(self) -> int:
        """Schedule due periodic ticks, if one can be due by now; returns how many."""
        if time.monotonic() < self._next_periodic:
            return 0
        scheduled = len(periodic.schedule_due(self.using))
        wait = periodic.seconds_to_next_tick()
        self._next_periodic = time.monotonic() + (60.0 if wait is None else min(wait, 60.0))
        return scheduled

    # -- crash recovery -------------------------------------------------------------

    def recover_if_due(self) -> int:
        if time.monotonic() < self._next_recovery:
            return 0
        self._next_recovery = time.monotonic() + queue_settings.RECOVERY_INTERVAL
        return self.recover()

    def recover(self) -> int:
        """Requeue (or fail) the running jobs of dead workers; returns how many.

        Between jobs, a job still running under this worker's own id is one whose
        failure could not be recorded (its connection was lost, then the database
        was unreachable for a moment): it is recovered too, or it would stay
        running for as long as this worker lives.
        """
        running = Job.objects.using(self.using).running()
        if self.current is not None:
            running = running.exclude(worker=self.worker_id)
        workers = set(running.order_by().values_list("worker", flat=True).distinct())
        if not workers:
            return 0
        dead = self.sql.dead_workers(workers - {self.worker_id})
        if self.worker_id in workers:
            dead.add(self.worker_id)
        recovered: collections.Counter[str] = collections.Counter()
        for job in running.filter(worker__in=dead):
            if job.worker == self.worker_id:
                lost = RuntimeError(
                    f"Worker {job.worker} lost its database connection while running this job."
                )
            else:
                lost = RuntimeError(f"Worker {job.worker} was lost while running this job.")
            outcome = self._failed(job, lost, time.monotonic(), worker=job.worker, lost=True)
            if outcome.status != "fenced":
                recovered[job.worker] += 1
                logger.warning("Job %s: %s", job.pk, lost)
        for name, count in recovered.items():
            WorkerRow.objects.using(self.using).filter(name=name).update(
                recovered=models.F("recovered") + count
            )
        return sum(recovered.values())

    # -- one job ------------------------------------------------------------------

    def execute(self, job: Job) -> Outcome:
        """Claim this queued job (due or not) and run it."""
        if job.pk is None:
            raise InvalidJobState(
                "This job has no row yet: schedule() writes it when the surrounding "
                "transaction commits."
            )
        self._alive()
        try:
            claimed = self.sql.claim(self.worker_id, job_id=job.pk)
            if claimed is None:
                job.refresh_from_db(fields=["status"])
                raise InvalidJobState(f"Job {job.pk} is {job.status}; only a queued job can run.")
            return self.run(claimed)
        finally:
            self.close()

    def run(self, job: Job) -> Outcome:
        """Run a job this worker has claimed, and record what became of it."""
        started = time.monotonic()
        self.current = job
        reporter = Reporter(job, self.progress)
        send_event("started", job)
        try:
            outcome = self._run(job, started, reporter)
        finally:
            self.current = None
            if reporter.current is not None:
                self.progress.clear(job)
            send_event("cleanup", job)
        if outcome.status != "deferred":
            self.jobs_done += 1
            self.failures += int(outcome.status in ("retrying", Status.FAILED))
        return outcome

    def _run(self, job: Job, started: float, reporter: Reporter) -> Outcome:
        if (unrunnable := _unrunnable(job)) is not None:
            return self._failed(job, unrunnable, started, final=True)
        try:
            function = resolve(job.name)
        except (JobNotAllowed, TypeError) as exc:
            return self._failed(job, exc, started, final=True)
        except Exception as exc:
            return self._failed(job, exc, started)
        timeout = job.timeout or queue_settings.TIMEOUT
        committed = False
        token = _reporter.set(reporter)
        try:
            with self._time_limit(timeout), self.sql.job_transaction():
                if not take_job_locks(job, self.using):
                    raise _LocksBusy
                self.sql.limit_statements(timeout, pooled=self.liveness.pooled)
                result = _storable(function(*job.args, **job.kwargs))
                self._complete(job, result, reporter)
            committed = True
        except _LocksBusy:
            return self._defer(job, started)
        except CompletionFenced as exc:
            logger.warning("%s", exc)
            return Outcome(job.pk, job.name, "fenced", time.monotonic() - started, str(exc))
        except JobCancelled:
            return self._cancelled(job, started, reporter)
        except WorkerAborted as exc:
            self._failed(job, exc, started, aborted=True, reporter=reporter)
            raise
        except JobTimeout as exc:
            if not committed:  # else the alarm fired just after the commit: a success
                return self._failed(job, exc, started, reporter=reporter)
        except (OperationalError, InterfaceError) as exc:
            if timeout and self.sql.is_statement_timeout(exc):
                timed_out = JobTimeout(f"timed out after {timeout:g}s")
                return self._failed(job, timed_out, started, reporter=reporter)
            lost = self.sql.is_connection_lost(exc)
            return self._failed(job, exc, started, reporter=reporter, lost=lost)
        except BaseException as exc:
            # The job's own exception, whatever it is: SystemExit, and a KeyboardInterrupt
            # the body raised itself (the worker's own signals raise WorkerAborted and
            # JobTimeout, handled above), fail this attempt and never stop the worker.
            return self._failed(job, exc, started, reporter=reporter)
        finally:
            _reporter.reset(token)
        job.status, job.result = Status.SUCCEEDED, result
        send_event("succeeded", job, result=result, progress=reporter.snapshot().as_dict())
        return Outcome(job.pk, job.name, Status.SUCCEEDED, time.monotonic() - started)

    @contextlib.contextmanager
    def _time_limit(self, seconds: float | None) -> Iterator[None]:
        """Raise ``JobTimeout`` into the job after ``seconds`` (main thread only)."""
        if not seconds or threading.current_thread() is not threading.main_thread():
            yield
            return

        def expire(signum: int, frame: FrameType | None) -> None:
            raise JobTimeout(f"timed out after {seconds:g}s")

        previous = signal.signal(signal.SIGALRM, expire)
        # A little after the database's statement_timeout, so that a blocked query
        # is cancelled server-side first and the connection stays usable.
        signal.setitimer(signal.ITIMER_REAL, seconds + 0.2)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _claimed(self, job: Job, worker: str | None = None) -> models.QuerySet[Job]:
        """The job's row, only while it is still running under this claim."""
        return Job.objects.using(self.using).filter(
            pk=job.pk,
            status=Status.RUNNING,
            attempts=job.attempts,
            worker=worker or self.worker_id,
        )

    def _complete(self, job: Job, result: Any, reporter: Reporter) -> None:
        progress = None
        if reporter.current is not None:
            progress = (reporter.current, reporter.total, reporter.message)
        if not self.sql.complete(job, self.worker_id, result, progress):
            raise CompletionFenced(
                f"Job {job.pk} attempt {job.attempts} is no longer claimed by {self.worker_id}; "
                "its transaction was rolled back."
            )

    def _cancelled(self, job: Job, started: float, reporter: Reporter) -> Outcome:
        """Cancellation was requested and the job noticed: its writes rolled back."""
        duration = time.monotonic() - started
        with self.sql.job_transaction():
            updated = self._claimed(job).update(
                status=Status.CANCELLED, finished_at=Now(), **reporter.row_values()
            )
        if not updated:
            return Outcome(job.pk, job.name, "fenced", duration)
        job.status = Status.CANCELLED
        send_event("cancelled", job, progress=reporter.snapshot().as_dict())
        return Outcome(job.pk, job.name, Status.CANCELLED, duration)

    def _defer(self, job: Job, started: float) -> Outcome:
        """Its object locks are busy: back to the queue shortly, the attempt not counted."""
        delay = queue_settings.LOCK_RETRY_DELAY
        later = models.ExpressionWrapper(
            Now() + timedelta(seconds=delay), output_field=models.DateTimeField()
        )
        if self._claimed(job).update(
            status=Status.QUEUED, attempts=models.F("attempts") - 1, run_after=later
        ):
            job.status, job.attempts = Status.QUEUED, job.attempts - 1
            send_event("retrying", job, message="object locks busy", retry_in=delay, deferred=True)
        return Outcome(job.pk, job.name, "deferred", time.monotonic() - started, retry_in=delay)

    @staticmethod
    def _attempt_limit(job: Job, lost: bool) -> int:
        if lost:
            return max(job.max_attempts, queue_settings.MAX_LOST_ATTEMPTS)
        return job.max_attempts

    def _failed(
        self,
        job: Job,
        exc: BaseException,
        started: float,
        *,
        final: bool = False,
        lost: bool = False,
        aborted: bool = False,
        worker: str | None = None,
        reporter: Reporter | None = None,
    ) -> Outcome:
        """Record a failed attempt, then requeue the job (with backoff) or mark it failed.

        ``lost``: the attempt was lost to the infrastructure (its worker or database
        connection), not to the job: due again at once, and retried until the job has
        made ``MAX_LOST_ATTEMPTS`` attempts even past its ``max_attempts`` (counted,
        so a job that keeps killing its worker still ends). ``aborted``: the worker
        is stopping; the job is due again at once, even after its last attempt.
        """
        message = str(exc)[:MESSAGE_MAX_CHARS]
        summary = f"{exception_path(exc)}: {message}"[:SUMMARY_MAX_CHARS]
        duration = time.monotonic() - started
        retry_in: float | None = None
        values: dict[str, Any]
        if aborted:
            status, retry_in = "aborted", 0.0
            values = {"status": Status.QUEUED, "run_after": Now()}
        elif final or job.attempts >= self._attempt_limit(job, lost):
            status, values = Status.FAILED, {"status": Status.FAILED, "finished_at": Now()}
        elif lost:
            status, retry_in = "retrying", 0.0
            values = {"status": Status.QUEUED, "run_after": Now()}
        else:
            retry_in = retry_delay(job.attempts)
            later = Now() + timedelta(seconds=retry_in)
            status = "retrying"
            values = {
                "status": Status.QUEUED,
                "run_after": models.ExpressionWrapper(later, output_field=models.DateTimeField()),
            }
        if reporter is not None:
            values.update(reporter.row_values())
        try:
            with self.sql.job_transaction():
                if self._claimed(job, worker).update(last_error=summary, **values):
                    JobError.objects.using(self.using).create(
                        job_id=job.pk,
                        attempt=job.attempts,
                        worker=worker or self.worker_id,
                        exception=exception_path(exc)[:255],
                        message=message,
                        traceback=format_traceback(exc),
                    )
                else:
                    status = "fenced"
        except DatabaseError:
            # The row stays running; crash recovery requeues it.
            logger.exception("Could not record the failure of job %s.", job.pk)
            self._keep_connections_healthy(force=True)
        if status in (Status.FAILED, "retrying", "aborted"):
            job.status = Status.FAILED if status == Status.FAILED else Status.QUEUED
            job.last_error = summary
            event = "failed" if status == Status.FAILED else "retrying"
            send_event(event, job, error=summary, message=message, retry_in=retry_in)
        if status == Status.FAILED:
            logger.error("Job %s %s failed: %s", job.pk, job.name, summary)
        return Outcome(job.pk, job.name, status, duration, summary, retry_in)
