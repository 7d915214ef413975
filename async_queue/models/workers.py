"""Worker rows: each ``flush_queue`` process's lease on life and what it is doing."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class WorkerMode(models.TextChoices):
    DIRECT = "direct", "Direct connection"
    POOLED = "pooled", "Behind a connection pooler"


class Worker(models.Model):
    """A ``flush_queue`` process: its lease on life and what it is doing.

    A worker refreshes ``heartbeat_at`` on a connection of its own, outside
    Django's pool. On a direct connection it also holds a session advisory lock
    there (the fast path: the lock vanishes with the process). Behind a pooler
    only the lease counts: a worker whose heartbeat is older than
    ``WORKER_TIMEOUT`` is dead. Whoever finds a worker dead sets ``lost_at``; a
    worker that finds its own row lost stops claiming and registers again.
    """

    name = models.CharField(max_length=200, unique=True, help_text="Job.worker of its claims.")
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, blank=True, help_text="Queues it claims from.")
    mode = models.CharField(max_length=10, choices=WorkerMode.choices, default=WorkerMode.DIRECT)
    started_at = models.DateTimeField(db_default=Now())
    heartbeat_at = models.DateTimeField(db_default=Now())
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set on a clean exit.")
    lost_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when another worker found it dead."
    )
    current_job_id = models.BigIntegerField(null=True, blank=True)
    jobs_done = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    recovered = models.PositiveIntegerField(
        default=0, help_text="Running jobs it had when it was found dead."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(stopped_at__isnull=True, lost_at__isnull=True),
                name="async_queue_worker_live_idx",
            )
        ]

    def __str__(self) -> str:
        return self.name
