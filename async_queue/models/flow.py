"""Rows of flow control: how many jobs of a rate key started in a window."""

from __future__ import annotations

from django.db import models


class RateCount(models.Model):
    """Starts of jobs with ``key`` in the window ``window`` (``floor(epoch / period)``).

    The claim increments it in the statement that marks a job running, only while
    it is below the job's rate limit (see ``async_queue.limits``).
    """

    key = models.CharField(max_length=255)
    window = models.BigIntegerField()
    starts = models.PositiveIntegerField(default=0)
    period = models.FloatField(help_text="Seconds; the window ends at (window + 1) * period.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window"], name="async_queue_rate_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} window {self.window}: {self.starts} starts"
