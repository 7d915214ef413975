"""A worker's database outage: one traceback, then sparse lines, then one when it is back."""

from __future__ import annotations

import logging

from django.db import OperationalError

from async_queue import shutdown
from async_queue.shutdown import Outage


def fail(outage: Outage, error: Exception) -> None:
    """As the worker loop does: inside the handler of the error."""
    try:
        raise error
    except OperationalError:
        outage.failed(error)


def traceback_of(record: logging.LogRecord) -> type | None:
    return record.exc_info[0] if record.exc_info else None


def test_an_outage_logs_one_traceback_then_lines_further_and_further_apart(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(shutdown.time, "monotonic", lambda: clock[0])
    outage = Outage()
    error = OperationalError("connection refused\nis the server running?")
    with caplog.at_level(logging.INFO, logger="async_queue.worker"):
        for _ in range(40):  # a retry every half second for 20 s
            fail(outage, error)
            clock[0] += 0.5
        clock[0] += 0.5
        outage.over()
    records = [(r.levelname, r.getMessage(), traceback_of(r)) for r in caplog.records]
    assert records[0] == (
        "ERROR",
        "Database error in the worker loop; retrying.",
        OperationalError,
    )
    still = [message for level, message, _ in records if "still unavailable" in message]
    # After 1, 2, 4, 8 and 16 seconds: five lines for 40 failures, each the error's first line.
    assert len(still) == 5
    assert all(message.endswith("retrying: connection refused") for message in still)
    assert records[-1] == ("WARNING", "Database available again after 20.5s; resuming.", None)
    assert [kind for *_, kind in records[1:]] == [None] * (len(records) - 1)
    assert outage.since is None


def test_the_next_outage_starts_with_a_traceback_again(caplog):
    outage = Outage()
    with caplog.at_level(logging.ERROR, logger="async_queue.worker"):
        fail(outage, OperationalError("down"))
        fail(outage, OperationalError("still down"))
        outage.over()
        fail(outage, OperationalError("down again"))
    kinds = [traceback_of(r) for r in caplog.records if r.levelname == "ERROR"]
    assert kinds == [OperationalError, OperationalError]
