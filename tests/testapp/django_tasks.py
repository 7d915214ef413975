"""django.tasks ``@task`` functions for the backend tests (Django 6.0+ only)."""

from django.tasks import task

from .models import Counter


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="mail", priority=50)
def send(to: str) -> str:
    return f"sent to {to}"


@task
def explode() -> None:
    raise ValueError("task exploded")


@task
async def async_add(a: int, b: int) -> int:
    await Counter.objects.acreate(name=f"async-{a}-{b}")
    return a + b


@task(takes_context=True)
def attempt_number(context) -> int:
    return context.attempt
