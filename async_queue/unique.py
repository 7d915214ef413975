"""Unique jobs, both kinds: ``unique=True``/``unique_key=`` (no second queued or running
job with a key: the partial unique index on ``Job.unique_key``) and ``unique_for=`` (no
second job with a key within a window: a ``UniqueWindow`` row per key, taken over by a
primary-key upsert only where its window has closed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from django.db import IntegrityError, connections, models, transaction
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Now
from django.db.models.sql import Query

from .exceptions import ScheduleError
from .models import Job, Status, UniqueWindow

# The longest unique_for: the database clock plus it must stay a storable datetime.
MAX_UNIQUE_FOR = timedelta(days=36525)


# Where build_job() leaves a job's window (in the instance's dict) until _insert()
# writes it: like job.lock_keys, it is not a column of the job.
WINDOW_ATTRIBUTE = "unique_window"


class Window(NamedTuple):
    """What ``unique_for`` asks of an unsaved job: no second job with ``key`` for ``length``."""

    key: str
    length: timedelta

    def attach(self, job: Job) -> None:
        """Make this the window of unsaved ``job``, for ``insert_unique()``."""
        vars(job)[WINDOW_ATTRIBUTE] = self


def unique_window(job: Job) -> Window | None:
    """The ``unique_for`` window ``build_job()`` gave this unsaved job, if any."""
    window: Window | None = vars(job).get(WINDOW_ATTRIBUTE)
    return window


def checked_unique_for(value: Any) -> timedelta:
    """``unique_for`` if it is a usable window; ``ScheduleError`` naming the fix if not."""
    if not isinstance(value, timedelta):
        hint = (
            f" Pass timedelta(seconds={value!r})."
            if isinstance(value, int | float) and not isinstance(value, bool)
            else ""
        )
        raise ScheduleError(
            f"unique_for must be a positive timedelta; got {type(value).__name__} {value!r}.{hint}"
        )
    if not timedelta(0) < value <= MAX_UNIQUE_FOR:
        raise ScheduleError(
            f"unique_for must be a positive timedelta of at most {MAX_UNIQUE_FOR.days} days; "
            f"got {value!r}."
        )
    return value


def key_order(job: Job) -> tuple[bool, str]:
    """Where a unique job's key comes in the order its transaction takes the keys."""
    window = unique_window(job)
    return (False, window.key) if window else (True, job.unique_key or "")


def _take(job: Job, existing: Job, using: str) -> None:
    """Make ``job`` (not written) stand for ``existing``, the job that took its place."""
    for field in Job._meta.concrete_fields:
        setattr(job, field.attname, getattr(existing, field.attname))
    job._state.adding, job._state.db = False, using
    job.deduplicated = True


def insert_unique(job: Job, using: str, tries: int = 5) -> bool:
    """Insert a unique job, or take the values of the job that holds its key: the
    queued or running job with its ``unique_key``, or the job that opened its key's
    window (``unique_for``) if that is still open.

    The partial unique index, or the window's row, decides, so concurrent schedulers
    cannot both insert. Returns whether the row was written.
    """
    if (window := unique_window(job)) is not None:
        return _insert_in_window(job, window, using, tries)
    active = Job.objects.using(using).filter(
        unique_key=job.unique_key, status__in=[Status.QUEUED, Status.RUNNING]
    )
    for _ in range(tries):
        try:
            with transaction.atomic(using=using):
                job.save(using=using, force_insert=True)
        except IntegrityError:
            existing = active.first()
            if existing is None:  # it finished in between: try again
                continue
            _take(job, existing, using)
            return False
        job.deduplicated = False
        return True
    raise ScheduleError(f"Could not schedule unique job {job.unique_key!r}: it kept conflicting.")


def _compiled(expression: BaseExpression, using: str) -> tuple[str, list[Any]]:
    """SQL and parameters of an ORM expression on database ``using``, for raw statements
    (the unique windows'): the database clock read and written as Django does in every
    other timestamp, so that the raw statements' values compare with the ORM's."""
    query = Query(UniqueWindow)
    compiler = query.get_compiler(using=using)
    sql, params = compiler.compile(expression.resolve_expression(query))
    return sql, list(params)


def _open_window(window: Window, using: str) -> bool:
    """Open ``window`` unless its key's window is still open; True if it was opened.

    One statement decides, so concurrent schedulers cannot both open it: an INSERT
    of the key's row that, if the row exists, takes it over only where its window
    has closed (``until <= now``, the database clock). The row's lock (PostgreSQL)
    or the write lock (SQLite) makes a concurrent scheduler wait for this one's
    transaction, then see its window. ``job_id`` is filled in once the job is written.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(UniqueWindow._meta.db_table)
    key, job_id, until = quote("key"), quote("job_id"), quote("until")
    until_sql, until_params = _compiled(
        models.ExpressionWrapper(Now() + window.length, output_field=models.DateTimeField()),
        using,
    )
    now_sql, now_params = _compiled(Now(), using)
    sql = (
        f"INSERT INTO {table} ({key}, {job_id}, {until}) VALUES (%s, NULL, {until_sql}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {until} = excluded.{until}, {job_id} = NULL "
        f"WHERE {table}.{until} <= {now_sql} RETURNING {key}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [window.key, *until_params, *now_params])
        return cursor.fetchone() is not None


def _insert_in_window(job: Job, window: Window, using: str, tries: int) -> bool:
    """Insert a ``unique_for`` job and open its key's window, or take the values of
    the job that opened the window still open. Returns whether the row was written.

    Called inside ``scheduling._insert()``'s transaction, so the window's row and the job's
    commit or roll back together: a schedule that is rolled back leaves the window
    as it was.
    """
    windows = UniqueWindow.objects.using(using).filter(key=window.key)
    for _ in range(tries):
        if _open_window(window, using):
            job.save(using=using, force_insert=True)
            windows.update(job_id=job.pk)
            job.deduplicated = False
            return True
        row = windows.values_list("job_id").first()
        if row is None:  # the window closed and was pruned in between: try again
            continue
        (opened_by,) = row
        jobs = Job.objects.using(using)
        if opened_by is not None and (existing := jobs.filter(pk=opened_by).first()):
            _take(job, existing, using)
            return False
        # The job that opened the window has been deleted since (or an operator's
        # row names none): nothing is written, and the returned Job, built from
        # this call's arguments, carries that job's id.
        if opened_by is not None:
            job.pk, job._state.adding, job._state.db = opened_by, False, using
        job.deduplicated = True
        return False
    raise ScheduleError(f"Could not schedule unique job {window.key!r}: it kept conflicting.")


def prune_windows(using: str = "default", batch: int = 2000) -> int:
    """Delete the ``unique_for`` windows that have closed, ``batch`` rows a statement;
    returns how many.

    A closed window's row does nothing an absent one would not (the next schedule of
    its key opens a new window either way), so it can go once it has closed. Each batch's
    DELETE checks ``until`` again itself: a window a scheduler reopens between the
    choice of the batch and the DELETE is kept.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(UniqueWindow._meta.db_table)
    key, until = quote("key"), quote("until")
    now_sql, now_params = _compiled(Now(), using)
    closed = f"{until} <= {now_sql}"
    sql = (
        f"DELETE FROM {table} WHERE {closed} AND {key} IN "
        f"(SELECT {key} FROM {table} WHERE {closed} LIMIT %s)"
    )
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*now_params, *now_params, batch])
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted
