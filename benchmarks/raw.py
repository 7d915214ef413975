"""The raw baseline: psycopg without Django, running the SQL the queue runs.

``raw_worker`` is the loop a ``--raw-worker`` subprocess runs: the worker's own
claim and fenced completion, captured from a real run and handed over as a JSON
spec. The INSERT helpers write the row ``schedule()`` writes. This module
imports psycopg only (Django inside the one function that reads its settings).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from .jobs import BUMP_SQL, noop

ENTRY_POINT = Path(__file__).resolve().with_name("queue.py")
MAX_PARAMS = 65535  # PostgreSQL's limit of bind parameters in one statement

# The columns and values schedule() writes for a job without arguments, in the
# order Django's INSERT names them; run_after is the database's now().
INSERT_COLUMNS = (
    "name",
    "args",
    "kwargs",
    "meta",
    "queue",
    "priority",
    "status",
    "run_after",
    "started_at",
    "finished_at",
    "attempts",
    "max_attempts",
    "worker",
    "result",
    "last_error",
    "user_id",
    "timeout",
    "group_id",
    "waits_for_group",
    "has_locks",
    "progress_current",
    "progress_total",
    "progress_message",
)
# Columns compared between a queue-written and a raw-written row (a self-check).
COMPARED_COLUMNS = [c for c in INSERT_COLUMNS if c not in ("run_after",)] + ["created_at IS NULL"]


def require_entry_point() -> None:
    """Refuse to run unless this process is ``python -m benchmarks.queue``.

    The entry point creates and drops databases and runs SQL handed to it on its
    command line: importing these modules (a worker running ``benchmarks.settings``
    imports ``benchmarks.jobs``, a shell anything) must not reach that code.
    """
    if Path(sys.argv[0]).resolve() != ENTRY_POINT:
        raise RuntimeError("The benchmark runs only as `python -m benchmarks.queue`.")


def _fill(template: Sequence[dict[str, Any]], slots: dict[str, Any]) -> list[Any]:
    return [slots[item["slot"]] if "slot" in item else item["value"] for item in template]


def connect_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """psycopg.connect() arguments; ``client`` binding mimics Django's default cursor."""
    kwargs = dict(spec["connect"])
    if spec.get("binding") == "client":
        kwargs.update(cursor_factory=psycopg.ClientCursor, prepare_threshold=None)
    return kwargs


def raw_worker(spec: dict[str, Any]) -> int:
    """Claim (autocommit), then BEGIN; body; the fenced completion; COMMIT. Returns jobs run.

    ``listen``: when nothing is due, wait for a NOTIFY on the queue's channel
    (in 0.25 s slices, like the worker) until ``max_jobs`` ran.
    """
    require_entry_point()
    worker = f"raw:{os.getpid()}"
    index = {name: i for i, name in enumerate(spec["columns"])}
    claim_params = _fill(spec["claim_params"], {"worker": worker})
    claim_sql, complete_sql, complete_params = (
        spec["claim_sql"],
        spec["complete_sql"],
        spec["complete_params"],
    )
    body, listen, limit = spec["body"], spec["listen"], spec.get("max_jobs")
    done = 0
    with (
        psycopg.connect(**connect_kwargs(spec), autocommit=True) as conn,
        conn.cursor() as cursor,
    ):
        if listen:
            cursor.execute(f"LISTEN {spec['channel']}")
        while limit is None or done < limit:
            cursor.execute(claim_sql, claim_params)
            row = cursor.fetchone()
            if row is None:
                if not listen:
                    break
                for _ in conn.notifies(timeout=0.25, stop_after=1):
                    pass
                continue
            slots = {"id": row[index["id"]], "attempts": row[index["attempts"]], "worker": worker}
            with conn.transaction():
                if body == "bump":
                    cursor.execute(BUMP_SQL, [row[index["args"]][0]])
                cursor.execute(complete_sql, _fill(complete_params, slots))
                if cursor.rowcount != 1:
                    raise RuntimeError(f"Completion of job {slots['id']} matched no row.")
            done += 1
    return done


def insert_sql(rows: int) -> str:
    """The multi-row INSERT of ``rows`` jobs, as ``schedule_many`` writes them."""
    row = ", ".join("STATEMENT_TIMESTAMP()" if c == "run_after" else "%s" for c in INSERT_COLUMNS)
    return (
        f"INSERT INTO async_queue_job ({', '.join(INSERT_COLUMNS)}) VALUES "
        + ", ".join([f"({row})"] * rows)
        + " RETURNING id, run_after, created_at"
    )


def insert_row() -> list[Any]:
    """The parameters of one row of ``insert_sql``: a no-op job without arguments."""
    from async_queue.conf import queue_settings  # Django: only in the main process

    values = {
        "name": f"{noop.__module__}.{noop.__qualname__}",
        "args": "[]",
        "kwargs": "{}",
        "meta": "{}",
        "queue": queue_settings.DEFAULT_QUEUE,
        "priority": 0,
        "status": "queued",
        "attempts": 0,
        "max_attempts": queue_settings.MAX_ATTEMPTS,
        "worker": "",
        "last_error": "",
        "waits_for_group": False,
        "has_locks": False,
        "progress_message": "",
    }
    return [values.get(c) for c in INSERT_COLUMNS if c != "run_after"]
