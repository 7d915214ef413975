"""Tasks of the backend's own tests (tests/async_queue/test_backends.py); not ported."""

from django.tasks import task
from django.utils import timezone

from async_queue import job


@task
def echo(*args, **kwargs):
    """What the task received, and of which types."""
    return {
        "args": list(args),
        "kwargs": kwargs,
        "types": [type(value).__name__ for value in [*args, *kwargs.values()]],
    }


@task
def returns_tuple():
    return (1, "two")


@task
def returns_datetime():
    return timezone.now()


@task
@job(max_attempts=2, timeout=30)
def declared_twice():
    raise ValueError("declared to be tried twice")


@task
def fails():
    raise ValueError("fails")
