"""Job functions the tests schedule."""

import sys
import time

from django.db import connection
from django.db.models import F

from async_queue import job

from .models import Counter, Record, Span

NOT_CALLABLE = 42


def undeclared() -> str:
    """A module-level function of an installed app that was never declared a job."""
    return "ran"


@job(queue="mail", priority=7, max_attempts=2, timeout=30)
def mail_job() -> str:
    return "sent"


@job
def increment(name: str = "c", by: int = 1, pause: float = 0) -> int:
    Counter.objects.get_or_create(name=name)
    Counter.objects.filter(name=name).update(value=F("value") + by)
    if pause:
        time.sleep(pause)
    return Counter.objects.get(name=name).value


@job
def record(label: str) -> str:
    Record.objects.create(label=label)
    return label


@job
def increment_then_fail(name: str = "c") -> None:
    increment(name)
    raise ValueError(f"failed after incrementing {name}")


@job
def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


@job
def call_exit(code: int = 3) -> None:
    sys.exit(code)


@job
def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


@job
def returns_text(text: str) -> dict:
    return {"text": text.replace("NUL", "\x00")}


@job
def returns_unstorable() -> object:
    return object()


@job
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


class Helper:
    def method(self) -> None:
        pass

    @staticmethod
    def static() -> None:
        pass


@job
def span(label: str, seconds: float) -> None:
    """Sleep, then record when the body ran."""
    started = time.time()
    time.sleep(seconds)
    Span.objects.create(label=label, started=started, ended=time.time())


@job
def pg_sleep(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


@job
def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@job
def swallow_everything(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "slept"


@job
def count_to(total: int, pause: float = 0, name: str = "progress") -> int:
    """Write a row, then report progress step by step (stops if cancelled)."""
    from async_queue import report_progress

    Counter.objects.create(name=name)
    for n in range(1, total + 1):
        if pause:
            time.sleep(pause)
        report_progress(n, total, f"step {n}")
    return total


@job
def report_many(calls: int) -> float:
    """Call report_progress in a tight loop; returns the seconds it took."""
    from async_queue import report_progress

    started = time.perf_counter()
    for n in range(calls):
        report_progress(n, calls)
    return time.perf_counter() - started


@job
def whoami() -> int:
    from async_queue import current_job

    return current_job().pk


@job
def wait_for_cancel(seconds: float) -> None:
    from async_queue import check_cancelled

    Counter.objects.create(name="cancel-me")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check_cancelled()
        time.sleep(0.05)


@job
async def async_write_then_fail(name: str) -> None:
    """An async job whose ORM write must roll back with its transaction."""
    await Counter.objects.acreate(name=name)
    raise ValueError("async job failed after writing")


@job
async def async_write(name: str) -> str:
    await Counter.objects.acreate(name=name)
    return name


@job
def record_tick() -> str:
    """A periodic job: record which tick this run is for."""
    from async_queue import current_job

    tick = current_job().meta["tick"]
    Record.objects.create(label=tick)
    return tick
