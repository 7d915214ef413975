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

A worker holds a lease while it lives (``liveness``) and recovers the jobs of
dead workers (``recovery``); a worker that was declared lost registers again
under a new name before its next claim. Signals stop it (``shutdown``), and a
failed attempt is recorded by ``attempts.fail``.
The worker keeps its database connections between jobs whatever
``CONN_MAX_AGE`` says, closing only ones that broke.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError

from . import periodic
from .attempts import close_broken_connections, fail, storable, time_limit, unrunnable
from .callables import resolve
from .conf import queue_settings
from .exceptions import (
    CompletionFenced,
    InvalidJobState,
    JobCancelled,
    JobNotAllowed,
    JobTimeout,
    WorkerAborted,
)
from .limits import next_window, queue_limits, slot_groups
from .liveness import Lease
from .locks import take_job_locks
from .models import Job
from .progress import Reporter, _reporter
from .recovery import recover
from .shutdown import Outage, stop_on_signals
from .signals import send_event
from .sql import ProgressStore, dialect
from .states import Event, Outcome, Result, Status

logger = logging.getLogger("async_queue.worker")
# Past a rate window's start on this machine's clock, for a database clock a little behind.
RATE_WINDOW_MARGIN = 0.01


class _LocksBusy(Exception):
    """The job's object locks are held elsewhere; it goes back to the queue."""

    def __init__(self, message: str = "object locks busy", delay: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.delay = queue_settings.LOCK_RETRY_DELAY if delay is None else delay


def execute(job: Job) -> Outcome:
    """Run the queued ``job`` now, in this process, exactly as a worker would
    (``Job.execute()``)."""
    return Worker(using=job._state.db or "default").execute(job)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
        self.outage = Outage()
        limits = queue_limits()
        self.limited_queues = {limit.queue for limit in limits if limit.concurrency}
        # Rate periods of the jobs seen (and the queues'): idle, wake when a window opens.
        self.rate_periods = {limit.rate.period for limit in limits if limit.rate}

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
            self.outage.over()
            if job is None:
                break
            outcome = self.run(job)
            count += 1
            if report:
                report(outcome)
            close_broken_connections()
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
        # A rate-limited job waits for the next window: be awake when it opens.
        opens = next_window(self.rate_periods, time.time())
        if opens is not None:
            seconds = min(seconds, opens + RATE_WINDOW_MARGIN)
        # Wait in short slices so that a stop signal ends the wait quickly.
        end = time.monotonic() + max(seconds, 0)
        while not self.stopping and (left := end - time.monotonic()) > 0:
            if self.waiter.wait(min(left, 0.25)):
                return
            self.recover_if_due()
            if self.periodic_if_due():
                return

    def _database_trouble(self, exc: DatabaseError) -> None:
        self.outage.failed(exc)
        close_broken_connections(force=True)
        end = time.monotonic() + 0.5  # retried every half second
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.1)

    def signals(self, grace: float | None = None) -> contextlib.AbstractContextManager[None]:
        """SIGTERM/SIGINT: the first finishes the current job, a second aborts it
        (``shutdown.stop_on_signals``; ``grace`` seconds later at the latest)."""
        return stop_on_signals(
            lambda: self.current is not None, lambda: self.stopping, self.stop, grace
        )

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
        """Requeue (or fail) the running jobs of dead workers (``recovery.recover``)."""
        return recover(self.using, self.worker_id, running_now=self.current is not None)

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
        send_event(Event.STARTED, job)
        try:
            outcome = self._run(job, started, reporter)
        finally:
            self.current = None
            if reporter.current is not None:
                self.progress.clear(job)
            send_event(Event.CLEANUP, job)
        if job.rate_period:
            self.rate_periods.add(job.rate_period)
        if outcome.status != Result.DEFERRED and (
            job.concurrency_key is not None or job.queue in self.limited_queues
        ):
            with contextlib.suppress(DatabaseError):
                self.sql.wake_workers()  # a slot is free: a waiting job may start
        if outcome.status not in (Result.DEFERRED, Result.SNOOZED):
            self.jobs_done += 1
            self.failures += int(outcome.status in (Result.RETRYING, Result.FAILED))
        return outcome

    def _run(self, job: Job, started: float, reporter: Reporter) -> Outcome:
        if (problem := unrunnable(job)) is not None:
            return self._failed(job, problem, started, final=True)
        try:
            function = resolve(job.name)
        except (JobNotAllowed, TypeError) as exc:
            return self._failed(job, exc, started, final=True)
        except Exception as exc:
            return self._failed(job, exc, started)
        timeout = job.timeout or queue_settings.TIMEOUT
        slots = slot_groups(job.concurrency_key, job.concurrency, job.queue, queue_limits())
        committed = False
        token = _reporter.set(reporter)
        try:
            with time_limit(timeout), self.sql.job_transaction():
                if not take_job_locks(job, self.using):
                    raise _LocksBusy
                if not self.sql.take_slots(slots):
                    # Due again at once: the claim's count keeps it out until a slot frees.
                    raise _LocksBusy("concurrency limit reached", delay=0)
                self.sql.limit_statements(timeout, pooled=self.liveness.pooled)
                result = storable(function(*job.args, **job.kwargs))
                self._complete(job, result, reporter)
            committed = True
        except _LocksBusy as busy:
            return self._defer(job, started, busy)
        except CompletionFenced as exc:
            logger.warning("%s", exc)
            return Outcome(job.pk, job.name, Result.FENCED, time.monotonic() - started, str(exc))
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
        send_event(Event.SUCCEEDED, job, result=result, progress=reporter.snapshot().as_dict())
        return Outcome(job.pk, job.name, Result.SUCCEEDED, time.monotonic() - started)

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
            cancelled = job.mark_cancelled(self.worker_id, reporter.row_values())
        if not cancelled:
            return Outcome(job.pk, job.name, Result.FENCED, duration)
        send_event(Event.CANCELLED, job, progress=reporter.snapshot().as_dict())
        return Outcome(job.pk, job.name, Result.CANCELLED, duration)

    def _defer(self, job: Job, started: float, busy: _LocksBusy) -> Outcome:
        """Its object locks or concurrency slots are busy: back to the queue, the attempt
        not counted."""
        if job.defer(self.worker_id, busy.delay):
            send_event(
                Event.RETRYING, job, message=busy.message, retry_in=busy.delay, deferred=True
            )
        return Outcome(
            job.pk, job.name, Result.DEFERRED, time.monotonic() - started, retry_in=busy.delay
        )

    def _failed(
        self,
        job: Job,
        exc: BaseException,
        started: float,
        reporter: Reporter | None = None,
        **how: bool,
    ) -> Outcome:
        progress = reporter.row_values() if reporter is not None else None
        return fail(job, exc, started, self.worker_id, progress=progress, **how)
