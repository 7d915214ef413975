"""Fill the job table with many rows fast, in SQL (no Python objects per row)."""

from django.db import connection

from async_queue.models import Job

# Of every 100 rows: 90 succeeded, 5 failed, 3 cancelled, 2 queued; 5 queues, 50 names.
_STATUS = (
    "CASE WHEN n % 100 < 90 THEN 'succeeded' WHEN n % 100 < 95 THEN 'failed' "
    "WHEN n % 100 < 98 THEN 'cancelled' ELSE 'queued' END"
)


def fill_jobs(count: int, finished_days_ago: int = 60) -> None:
    """Insert ``count`` job rows; finished ones ended ``finished_days_ago`` days ago."""
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = (
        "name, args, kwargs, meta, queue, priority, status, run_after, created_at, "
        "started_at, finished_at, attempts, max_attempts, worker, last_error, "
        "waits_for_group, has_locks, progress_message, tracker"
    )
    if connection.vendor == "postgresql":
        ago = f"NOW() - INTERVAL '{int(finished_days_ago)} days'"
        series = f"generate_series(1, {int(count)}) AS n"
        finished = f"CASE WHEN n % 100 < 98 THEN {ago} END"
        values = (
            f"'tests.faultapp.jobs.ledger_' || (n % 50), '[]', '{{}}', '{{}}', "
            f"'q' || (n % 5), 0, {_STATUS}, {ago}, {ago}, {ago}, {finished}, 1, 5, '', '', "
            "false, false, '', ''"
        )
        sql = f"INSERT INTO {table} ({columns}) SELECT {values} FROM {series}"
    else:
        ago = f"datetime('now', '-{int(finished_days_ago)} days')"
        finished = f"CASE WHEN n % 100 < 98 THEN {ago} END"
        values = (
            f"'tests.faultapp.jobs.ledger_' || (n % 50), '[]', '{{}}', '{{}}', "
            f"'q' || (n % 5), 0, {_STATUS}, {ago}, {ago}, {ago}, {finished}, 1, 5, '', '', "
            "0, 0, '', ''"
        )
        sql = (
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
            f"WHERE n < {int(count)}) INSERT INTO {table} ({columns}) SELECT {values} FROM s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {table}")
        else:
            cursor.execute("ANALYZE")
