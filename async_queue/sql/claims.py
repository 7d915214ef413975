"""The hot path's SQL: the claim (with flow control) and the fenced completion.

The claim is one statement that picks the next due job, marks it running and
counts the attempt. Flow control adds to its row choice (``limits``):

- a job whose concurrency key, or whose queue, already has its limit of running
  jobs is skipped (a count through an index; the job's transaction then takes a
  slot to make the limit exact);
- a job whose rate key has had its limit of starts in the current window is
  skipped. Its start is then counted in ``RateCount``, in the window of its
  ``started_at``: on SQLite by a trigger, in the claim's statement (the claim's
  filter ran under the single write lock, so the count it saw is the count); on
  PostgreSQL by a conditional upsert right after the claim that sees the latest
  count, so of two claims that both saw room for the last start only one is
  counted, and the other job goes back to wait for the next window. Jobs without
  a rate pay nothing more: the claim stays one plain statement.

Queue limits come from the settings and are written into the SQL as literals
(names quoted), so the statement stays cached per configuration.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..limits import QueueLimit
from ..models import Job, Pause, PauseKind, RateCount, Status


def literal(value: str | float) -> str:
    """``value`` as an SQL literal (settings values, never user input of a request)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''").replace("%", "%%") + "'"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


@dataclass(frozen=True)
class ClaimShape:
    """What a claim statement depends on besides its parameters (the cache key)."""

    now: str
    epoch: str  # seconds since 1970 of ``now``, as a number
    floor: str  # a template rounding a positive number down ("{}": CAST truncates)
    quote: Callable[[str], str]
    row_lock: str
    specific: bool
    queues: int
    prefix: bool
    limits: tuple[QueueLimit, ...]


def _case(column: str, values: dict[str, str]) -> str:
    if not values:
        return "NULL"
    whens = " ".join(f"WHEN {literal(queue)} THEN {value}" for queue, value in values.items())
    return f"(CASE {column} {whens} END)"


def rate_terms(table: str, shape: ClaimShape) -> tuple[str, str, str, str]:
    """SQL for a row's effective rate key, limit and current window (own rate, else queue's)."""
    queue = f"{table}.queue"
    rated = [limit for limit in shape.limits if limit.rate is not None]
    key = _case(queue, {limit.queue: literal(f"queue:{limit.queue}") for limit in rated})
    limit_ = _case(queue, {limit.queue: str(limit.rate.limit) for limit in rated if limit.rate})
    period = _case(queue, {limit.queue: repr(limit.rate.period) for limit in rated if limit.rate})
    key = f"COALESCE({table}.rate_key, {key})" if rated else f"{table}.rate_key"
    limit_ = f"COALESCE({table}.rate_limit, {limit_})" if rated else f"{table}.rate_limit"
    period = f"COALESCE({table}.rate_period, {period})" if rated else f"{table}.rate_period"
    window = "CAST({} AS BIGINT)".format(shape.floor.format(f"{shape.epoch} / {period}"))
    return key, limit_, period, window


_NAMED = re.compile(r"%\((\w+)\)s")


@functools.lru_cache(maxsize=64)
def claim_sql(shape: ClaimShape) -> tuple[str, tuple[str, ...]]:
    """The claim statement with positional placeholders, and the names of its parameters
    in order (written by name, sent by position: what every driver and replay takes)."""
    sql = _claim_sql(shape)
    return _NAMED.sub("%s", sql), tuple(_NAMED.findall(sql))


def _claim_sql(shape: ClaimShape) -> str:
    quote = shape.quote
    table = quote(Job._meta.db_table)
    rates = quote(RateCount._meta.db_table)
    key, limit, period, window = rate_terms(table, shape)
    columns = ", ".join(
        quote(field.column) for field in Job._meta.concrete_fields if field.column is not None
    )
    stamped = ""
    if any(limit.rate for limit in shape.limits):
        # The row takes its queue's rate (unless it has its own): what counts its start.
        stamped = f", rate_key = {key}, rate_limit = {limit}, rate_period = {period} "
    claimed = (
        f"UPDATE {table} SET status = '{Status.RUNNING}', attempts = attempts + 1, "
        f"started_at = {shape.now}, finished_at = NULL, worker = %(worker)s {stamped}"
    )
    if shape.specific:  # Job.execute(): this job, due or not, whatever the limits
        return f"{claimed}WHERE id = %(job_id)s AND status = '{Status.QUEUED}' RETURNING {columns}"
    running = f"status = '{Status.RUNNING}'"
    where = [
        f"status = '{Status.QUEUED}'",
        f"run_after <= {shape.now}",
        # A group's final job waits until no other job of the group is unfinished.
        f"(NOT waits_for_group OR NOT EXISTS (SELECT 1 FROM {table} AS sibling "
        f"WHERE sibling.group_id = {table}.group_id AND sibling.id <> {table}.id "
        f"AND sibling.status IN ('{Status.QUEUED}', '{Status.RUNNING}')))",
        # Not of a paused queue or job name (models.pauses). NOT IN over an uncorrelated
        # subquery reads the pause table once per claim and then probes a hash
        # (PostgreSQL) or a temporary index (SQLite) per row; the claim index's order stays.
        f"queue NOT IN (SELECT value FROM {quote(Pause._meta.db_table)} "
        f"WHERE kind = '{PauseKind.QUEUE}') AND name NOT IN (SELECT value FROM "
        f"{quote(Pause._meta.db_table)} WHERE kind = '{PauseKind.NAME}')",
        # Flow control: a key (or queue) at its limit of running jobs, or of starts.
        f"({table}.concurrency_key IS NULL OR (SELECT COUNT(*) FROM {table} AS peer "
        f"WHERE peer.{running} AND peer.concurrency_key = {table}.concurrency_key) "
        f"< {table}.concurrency)",
        f"({key} IS NULL OR COALESCE((SELECT starts FROM {rates} AS counted "
        f"WHERE counted.{quote('key')} = {key} AND counted.{quote('window')} = {window}), 0) "
        f"< {limit})",
    ]
    limited = {limit.queue: str(limit.concurrency) for limit in shape.limits if limit.concurrency}
    if limited:
        where.append(
            f"({_case(f'{table}.queue', limited)} IS NULL OR (SELECT COUNT(*) FROM {table} "
            f"AS mate WHERE mate.{running} AND mate.queue = {table}.queue) "
            f"< {_case(f'{table}.queue', limited)})"
        )
    if shape.queues:
        names = ", ".join(f"%(q{index})s" for index in range(shape.queues))
        where.append(f"queue IN ({names})")
    if shape.prefix:
        where.append("SUBSTR(name, 1, %(plen)s) = %(prefix)s")
    order = "ORDER BY priority DESC, run_after, id LIMIT 1"
    choice = f"FROM {table} WHERE {' AND '.join(where)} {order}"
    return (
        f"{claimed}WHERE id = (SELECT id {choice}{shape.row_lock}) "
        f"AND status = '{Status.QUEUED}' RETURNING {columns}"
    )


@functools.lru_cache(maxsize=8)
def count_start_sql(shape: ClaimShape) -> str:
    """Count a claimed job's start in the window of its ``started_at`` (the claim's own
    clock), only while below its limit; returns a row if it was counted."""
    quote = shape.quote
    table = quote(Job._meta.db_table)
    rates = quote(RateCount._meta.db_table)
    epoch = shape.epoch.replace(shape.now, f"{table}.started_at")
    window = "CAST({} AS BIGINT)".format(shape.floor.format(f"{epoch} / {table}.rate_period"))
    key, slot = quote("key"), quote("window")
    return (
        f"INSERT INTO {rates} ({key}, {slot}, starts, period) "
        f"SELECT rate_key, {window}, 1, rate_period FROM {table} "
        f"WHERE id = %s AND rate_key IS NOT NULL "
        f"ON CONFLICT ({key}, {slot}) DO UPDATE SET starts = {rates}.starts + 1 "
        f"WHERE {rates}.starts < %s RETURNING starts"
    )


def claim_params(
    names: Sequence[str], worker: str, job_id: int | None, queues: Sequence[str], prefix: str
) -> list[str | int]:
    """The claim's parameters in the order of ``names`` (from ``claim_sql``)."""
    values: dict[str, str | int] = {"worker": worker, "plen": len(prefix), "prefix": prefix}
    if job_id is not None:
        values["job_id"] = job_id
    values.update({f"q{index}": queue for index, queue in enumerate(queues)})
    return [values[name] for name in names]


@functools.lru_cache(maxsize=8)
def complete_sql(now: str, quote: Callable[[str], str], progress: bool) -> str:
    progress_sql = (
        f", progress_current = %s, progress_total = %s, progress_message = %s, "
        f"progress_updated_at = {now}"
        if progress
        else ""
    )
    return (
        f"UPDATE {quote(Job._meta.db_table)} SET status = '{Status.SUCCEEDED}', "
        f"result = %s, finished_at = {now}{progress_sql} "
        f"WHERE id = %s AND status = '{Status.RUNNING}' AND attempts = %s AND worker = %s"
    )


@functools.lru_cache(maxsize=8)
def prune_rate_counts_sql(shape: ClaimShape) -> str:
    """Delete up to %s counts of windows that have ended."""
    quote = shape.quote
    rates = quote(RateCount._meta.db_table)
    ended = f"({quote('window')} + 1) * period <= {shape.epoch}"
    return f"DELETE FROM {rates} WHERE id IN (SELECT id FROM {rates} WHERE {ended} LIMIT %s)"
