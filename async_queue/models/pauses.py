"""Pauses: a queue or a job name that workers do not claim from until it is resumed.

A pause is a row, so it holds for every worker on every machine, survives their
restarts, and takes effect with the next claim: the claim statement itself skips
the jobs of paused queues and names (``sql.base._claim_sql``). Running jobs are
not touched. ``pausing`` is the API that writes these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class PauseKind(models.TextChoices):
    QUEUE = "queue", "Queue"
    NAME = "name", "Job name"


class Pause(models.Model):
    """A paused queue (``kind="queue"``) or job name (``kind="name"``): ``value`` is its name."""

    kind = models.CharField(max_length=10, choices=PauseKind.choices)
    value = models.CharField(
        max_length=255, help_text="The queue's name, or the job's dotted name."
    )
    reason = models.CharField(max_length=255, blank=True, default="")
    paused_at = models.DateTimeField(db_default=Now())
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="async_queue_pauses",
    )

    class Meta:
        ordering = ["-kind", "value"]  # queues, then job names
        constraints = [
            # The claim looks a pause up by (kind, value): this is also its index.
            models.UniqueConstraint(fields=["kind", "value"], name="async_queue_pause_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=PauseKind.values), name="async_queue_pause_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"
