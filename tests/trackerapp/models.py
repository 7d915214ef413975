"""Models the lifecycle tracker tests mirror jobs into: a project's own records."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class TaskRecord(models.Model):
    """Every lifecycle field, in the types most projects use (numbers, JSON, a user FK)."""

    job_id = models.BigIntegerField(unique=True)
    state = models.CharField(max_length=20, blank=True, default="")
    message = models.CharField(max_length=40, blank=True, default="")
    percent = models.PositiveSmallIntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_text = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    affected = models.JSONField(null=True, blank=True)
    extra = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    note = models.CharField(max_length=100, blank=True, default="", help_text="Never mapped.")

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.state}"


class TextRecord(models.Model):
    """The same lifecycle in text columns, found through a foreign key to the Job."""

    job = models.OneToOneField("async_queue.Job", on_delete=models.CASCADE)
    status = models.CharField(max_length=20, blank=True, default="")
    progress = models.CharField(max_length=100, blank=True, default="")
    result = models.TextField(blank=True, default="")
    user = models.CharField(max_length=150, blank=True, default="")
    locks = models.TextField(blank=True, default="")
    payload = models.TextField(blank=True, default="")
    lock_count = models.IntegerField(null=True, blank=True)
    percent = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.status}"
