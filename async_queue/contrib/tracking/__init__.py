"""Mirror the lifecycle of jobs into a model of your own, by configuration.

::

    ASYNC_QUEUE = {"TRACKER": {
        "MODEL": "myapp.TaskRecord",              # required
        "CLASS": "async_queue.tracking.Tracker",  # optional: a Tracker subclass (dotted path)
        "LOOKUP": "job_id",                        # your field holding Job.pk (the default)
        "FIELDS": {"status": "state", "progress": "percent", "result": "result", ...},
        "STATUS_MAP": {"succeeded": "done"},       # optional: your own status values
    }}

A receiver on every signal of ``async_queue.signals`` hands each event to a
``Tracker`` built from the setting (read on every event, so ``override_settings``
works; the instance is cached per configuration). The first event seen for a job
(normally ``scheduled``; any event with something to write) creates its record,
also filling ``created``, ``user`` and ``objects`` from the job; every later event
updates only the fields it provides, with a queryset ``update()``:

=========  ==========================================================================
event      lifecycle fields written
=========  ==========================================================================
scheduled  status (queued), created, user, objects, payload, updated
started    status (running), updated
progress   progress, message, updated
succeeded  status, result, progress (100% if the total is known), completed, updated
retrying   status (retrying), error, message (the error's), updated
failed     status, error, failed, completed, updated
cancelled  status, completed, updated
cleanup    nothing of its own (buffered values, see below)
=========  ==========================================================================

Lifecycle fields you do not map are skipped, and a value that is None is never
written, so a later event cannot blank a meaningful value (the result stays
after ``cleanup``, the error after the next ``started``). Timestamps are the
event's ``timestamp``, except ``created``, which is the job's ``created_at``.
Statuses are ``queued``, ``running``, ``retrying``, ``succeeded``, ``failed`` and
``cancelled``, translated by ``STATUS_MAP``. How a value looks in your model is
decided by the ``format_*`` hooks from the target field's type; subclass
``Tracker``, override a hook and name the subclass in ``CLASS``.

**Per job, by name.** ``ASYNC_QUEUE["TRACKERS"] = {"bulk": {...}}`` configures
named trackers (each shaped like ``TRACKER``); a job scheduled with
``schedule(..., tracker="bulk")`` is mirrored by that one instead of the
setting, and ``tracker=False`` turns tracking off for it. The name is stored in
the job's ``tracker`` column; the configuration always comes from settings.
Nothing read from a job row, ``meta`` included, configures a tracker: ``meta``
is the caller's free-form data, and a model or class path taken from it would let
whoever schedules a job write any field of any model. ``manage.py check``
validates ``TRACKER`` and every entry of ``TRACKERS``.

**The job's transaction.** Between ``started`` and its outcome event a job's
body runs inside one transaction, and ``progress`` is sent from inside it. A
write to your model through that connection would be invisible until commit,
would roll back with a failed attempt, and on PostgreSQL would lock your record
so that any other connection writing it waits for the job (a deadlock when that
connection belongs to the same process). So while a job's window is open (per
job, from the event order) *and* the tracker's database connection is inside a
transaction block, the tracker does not write through that connection (a
``progress`` event opens the window too, should ``started`` have been missed):

- PostgreSQL (and any multi-writer database): it writes through a second
  connection to the same database, registered in this thread as
  ``"<alias>__tracker"`` (a clone of the alias's settings, outside Django's
  pool), each write in a short transaction of its own with a ``lock_timeout`` of
  ``side_lock_timeout`` seconds, so it can never hang a job: the progress is
  visible at once and survives a rollback. The
  connection is closed when the job's outcome (or ``cleanup``) arrives. If a
  write there fails (the job's body itself locked your record, say), it is
  logged, and the job's later values are buffered as on SQLite.
- SQLite: one writer at a time, and the job's transaction holds the write lock,
  so a second connection would wait and then fail with "database is locked".
  The tracker buffers the values instead (the latest progress wins) and writes
  them when the window closes: merged under the outcome event's own values, or
  at ``cleanup`` (sent after the job's transaction ended). So on SQLite your
  record shows a job's progress when the attempt ends; live progress is in the
  queue's own store (``async_queue.progress``).

Outside a window (``scheduled`` or ``cancelled`` inside a caller's transaction,
say) the tracker writes through the ordinary connection, so its writes commit or
roll back with the caller's. If your model lives on a database of its own, its
connection is not inside the job's transaction and every write goes straight
there. A tracker write inside a transaction is wrapped in a savepoint.

**Failures.** A failing tracker is logged (logger ``async_queue.tracking``) and
swallowed: it never breaks or retries a job, and never waits on a lock longer
than ``side_lock_timeout`` while a job's transaction is open.

``check_tracker`` validates the setting (``async_queue.E010``-``E017``,
``W010``). Make your LOOKUP field unique: two processes creating a job's record
at once then cannot make two.
"""

from __future__ import annotations

from .receivers import config_for, connect, get_tracker, receive, resolve_class
from .tracker import (
    DEFAULT_CLASS,
    Tracker,
    TrackerConfigError,
    close_side_connection,
    jsonable,
    side_connection,
)

__all__ = [
    "DEFAULT_CLASS",
    "Tracker",
    "TrackerConfigError",
    "close_side_connection",
    "config_for",
    "connect",
    "get_tracker",
    "jsonable",
    "receive",
    "resolve_class",
    "side_connection",
]
