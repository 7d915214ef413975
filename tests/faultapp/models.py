"""Rows the fault suite's jobs write: a double commit shows up here, never hides."""

from django.db import models


class LedgerCounter(models.Model):
    name = models.CharField(max_length=50, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class LedgerEntry(models.Model):
    """One row per committed ledger job body; ``job_id`` is deliberately not unique."""

    job_id = models.BigIntegerField(db_index=True)
    counter = models.CharField(max_length=50)
    pid = models.IntegerField()

    def __str__(self) -> str:
        return f"job {self.job_id} in {self.pid}"


class Slot(models.Model):
    """An object that storm jobs lock and increment."""

    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"slot {self.pk}={self.value}"
