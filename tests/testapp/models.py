from django.db import models


class Counter(models.Model):
    name = models.CharField(max_length=50, unique=True)
    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Record(models.Model):
    """One row per job body that committed, in commit order."""

    label = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.label


class Span(models.Model):
    """When a job body ran (wall clock), to check which jobs overlapped."""

    label = models.CharField(max_length=100)
    started = models.FloatField()
    ended = models.FloatField()

    def __str__(self) -> str:
        return f"{self.label} {self.started:.3f}-{self.ended:.3f}"
