"""The rows around a job: its group, its declared object locks, its failed attempts, and
the periodic ticks that decide which worker schedules a periodic job."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from ..exceptions import InvalidJobState
from ..states import Status
from .job import Job


class JobGroup(models.Model):
    """Jobs scheduled together; ``on_completion`` names one to run after all the others."""

    reference = models.CharField(max_length=255, db_index=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.reference

    def on_completion(self, job: Job) -> Job:
        """Make ``job`` (already written) run only after every other job of this group finished."""
        if job.pk is None:
            raise InvalidJobState(
                "on_completion() needs a written job: call it after the scheduling transaction "
                "committed, or schedule with on_commit=False."
            )
        updated = Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
            group=self, waits_for_group=True
        )
        if not updated:
            raise InvalidJobState(f"Job {job.pk} is no longer queued.")
        job.group, job.waits_for_group = self, True
        return job


class JobLock(models.Model):
    """An object a job declared it touches: ``key`` is ``"app_label.model:pk"`` or a string."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="locks")
    key = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "key"], name="async_queue_joblock_unique"),
        ]

    def __str__(self) -> str:
        return self.key


class JobError(models.Model):
    """One failed attempt: what was raised, where, and by which worker."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="errors")
    attempt = models.PositiveIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    worker = models.CharField(max_length=200, blank=True, default="")
    exception = models.CharField(max_length=255, help_text="Dotted class of the exception.")
    message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    decision = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_default="",
        help_text="What the failure policy made of it: retried when, or why not.",
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["created_at"], name="async_queue_error_created_idx")]

    def __str__(self) -> str:
        return f"Job {self.job_id}, attempt {self.attempt}: {self.exception}"


class PeriodicTick(models.Model):
    """One scheduled tick of a periodic job: the unique row decides which worker schedules it."""

    name = models.CharField(max_length=200)
    tick_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-tick_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "tick_at"], name="async_queue_tick_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.tick_at.isoformat()}"


class UniqueWindow(models.Model):
    """A ``unique_for`` key's current window: no second job with ``key`` is written before
    ``until`` (the database clock); ``job_id`` is the job that opened the window."""

    key = models.CharField(max_length=255, primary_key=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    until = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["until"], name="async_queue_window_until_idx")]

    def __str__(self) -> str:
        return f"{self.key} until {self.until.isoformat()}"
