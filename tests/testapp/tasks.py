"""Job functions the tests schedule."""

import sys
import time

from django.db import connection
from django.db.models import F

from .models import Counter, Record, Span

NOT_CALLABLE = 42


def increment(name: str = "c", by: int = 1, pause: float = 0) -> int:
    Counter.objects.get_or_create(name=name)
    Counter.objects.filter(name=name).update(value=F("value") + by)
    if pause:
        time.sleep(pause)
    return Counter.objects.get(name=name).value


def record(label: str) -> str:
    Record.objects.create(label=label)
    return label


def increment_then_fail(name: str = "c") -> None:
    increment(name)
    raise ValueError(f"failed after incrementing {name}")


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


def call_exit(code: int = 3) -> None:
    sys.exit(code)


def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


def returns_unstorable() -> object:
    return object()


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


class Helper:
    def method(self) -> None:
        pass

    @staticmethod
    def static() -> None:
        pass


def span(label: str, seconds: float) -> None:
    """Sleep, then record when the body ran."""
    started = time.time()
    time.sleep(seconds)
    Span.objects.create(label=label, started=started, ended=time.time())


def pg_sleep(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def swallow_everything(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "slept"


def count_to(total: int, pause: float = 0, name: str = "progress") -> int:
    """Write a row, then report progress step by step (stops if cancelled)."""
    from async_queue import report_progress

    Counter.objects.create(name=name)
    for n in range(1, total + 1):
        if pause:
            time.sleep(pause)
        report_progress(n, total, f"step {n}")
    return total


def report_many(calls: int) -> float:
    """Call report_progress in a tight loop; returns the seconds it took."""
    from async_queue import report_progress

    started = time.perf_counter()
    for n in range(calls):
        report_progress(n, calls)
    return time.perf_counter() - started


def whoami() -> int:
    from async_queue import current_job

    return current_job().pk


def wait_for_cancel(seconds: float) -> None:
    from async_queue import check_cancelled

    Counter.objects.create(name="cancel-me")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check_cancelled()
        time.sleep(0.05)


async def async_write_then_fail(name: str) -> None:
    """An async job whose ORM write must roll back with its transaction."""
    await Counter.objects.acreate(name=name)
    raise ValueError("async job failed after writing")


async def async_write(name: str) -> str:
    await Counter.objects.acreate(name=name)
    return name


def record_tick() -> str:
    """A periodic job: record which tick this run is for."""
    from async_queue import current_job

    tick = current_job().meta["tick"]
    Record.objects.create(label=tick)
    return tick
