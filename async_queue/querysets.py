"""Queries over jobs: one method per state, the claim order, cheap counts and names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import connections, models
from django.db.models.functions import Now

from .states import FINISHED, Status

if TYPE_CHECKING:
    from .models import Job  # noqa: F401 (used in the string "Job" below, a runtime subscript)


class JobQuerySet(models.QuerySet["Job"]):
    def queued(self) -> JobQuerySet:
        return self.filter(status=Status.QUEUED)

    def due(self) -> JobQuerySet:
        """Queued jobs whose ``run_after`` has passed on the database clock."""
        return self.filter(status=Status.QUEUED, run_after__lte=Now())

    def running(self) -> JobQuerySet:
        return self.filter(status=Status.RUNNING)

    def succeeded(self) -> JobQuerySet:
        return self.filter(status=Status.SUCCEEDED)

    def failed(self) -> JobQuerySet:
        return self.filter(status=Status.FAILED)

    def cancelled(self) -> JobQuerySet:
        return self.filter(status=Status.CANCELLED)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED)

    def in_claim_order(self) -> JobQuerySet:
        """Highest priority first, then the longest due, then the oldest."""
        return self.order_by("-priority", "run_after", "id")

    def count_by_status(self, cap: int, statuses: Iterable[str] = tuple(Status)) -> dict[str, int]:
        """How many of these jobs are in each status, each counted up to ``cap + 1``.

        One statement of per-status ``COUNT`` subqueries, each stopping after
        ``cap + 1`` rows (found through the status index), so the cost does not
        grow with the table: a count above ``cap`` means "more than ``cap``".
        Only ``statuses`` are counted (all by default).
        """
        counted = [Status(status) for status in statuses]
        if self.query.is_empty():
            return dict.fromkeys((status.value for status in counted), 0)
        parts, params = [], []
        jobs = self.order_by().values("pk")
        for index, status in enumerate(counted):
            limited = jobs.filter(status=status)[: cap + 1]
            sql, part_params = limited.query.get_compiler(using=self.db).as_sql()
            parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted_{index})")
            params.extend(part_params)
        with connections[self.db].cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(parts)}", params)
            row = cursor.fetchone()
        return {status.value: count for status, count in zip(counted, row, strict=True)}

    def names(self, limit: int) -> list[str]:
        """The distinct names of the stored jobs in order, at most ``limit`` of them.

        Every job in the table counts, whatever this queryset's filters: the names
        are found by skipping through the ``(name, status)`` index, one probe per
        distinct name, so the cost grows with the number of names (a few dozen to
        a few hundred in practice), not with the number of jobs.
        """
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        sql = (
            f"WITH RECURSIVE found(name, n) AS ("
            f"SELECT MIN(name), 1 FROM {table} "
            f"UNION ALL SELECT (SELECT MIN(name) FROM {table} WHERE name > found.name), n + 1 "
            f"FROM found WHERE found.name IS NOT NULL AND n < %s"
            f") SELECT name FROM found WHERE name IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [limit])
            return [name for (name,) in cursor.fetchall()]

    def cancel(self) -> int:
        """Cancel the queued jobs among these; returns how many were cancelled."""
        return self.queued().update(status=Status.CANCELLED, finished_at=Now())
