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
