import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from async_queue.checks import check_settings


def ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_settings()]


def test_default_and_valid_settings_pass():
    assert ids() == []
    assert ids(ASYNC_QUEUE={"MAX_ATTEMPTS": 3, "JOBS": ["tests.testapp.tasks.undeclared"]}) == []
    redaction = {"REDACT_KEYS": ["iban"], "REDACT_PATTERNS": [r"pin (?P<secret>\d+)"]}
    assert ids(ASYNC_QUEUE={**redaction, "SHOW_MAX_BYTES": 4096, "MAX_RESULT_BYTES": 10}) == []


def test_a_bad_pattern_is_named_with_the_reason():
    with override_settings(ASYNC_QUEUE={"REDACT_PATTERNS": ["ok", "[bad"]}):
        (error,) = check_settings()
    assert "ASYNC_QUEUE['REDACT_PATTERNS'][1] '[bad' is not a valid regular expression" in error.msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ["async_queue.E001"]),
        ({"MAX_ATTEMPT": 3}, ["async_queue.E002"]),
        ({"MAX_ATTEMPTS": "3"}, ["async_queue.E003"]),
        ({"MAX_ATTEMPTS": True}, ["async_queue.E003"]),
        ({"BACKOFF_MAX": -1}, ["async_queue.E004"]),
        ({"ALLOWED_MODULES": ["myapp"]}, ["async_queue.E005"]),
        ({"JOBS": ["myapp"]}, ["async_queue.E007"]),
        ({"JOBS": ["tests.testapp.tasks.missing"]}, ["async_queue.E007"]),
        ({"JOBS": ["tests.testapp.tasks.NOT_CALLABLE"]}, ["async_queue.E007"]),
        ({"MAX_ATTEMPTS": 0}, ["async_queue.E006"]),
        ({"REDACT_KEYS": ["iban", ""]}, ["async_queue.E040"]),
        ({"REDACT_KEYS": [None, "-"]}, ["async_queue.E040", "async_queue.E040"]),
        ({"REDACT_PATTERNS": ["ok", "[bad"]}, ["async_queue.E041"]),
        ({"REDACT_PATTERNS": [r"x?"]}, ["async_queue.E041"]),
        ({"REDACT_KEYS": "iban"}, ["async_queue.E003"]),
        ({"SHOW_MAX_BYTES": -1}, ["async_queue.E004"]),
        ({"MAX_RESULT_BYTES": 1.5}, ["async_queue.E003"]),
        ({"HEARTBEAT_INTERVAL": 0}, ["async_queue.E030"]),
        ({"WORKER_TIMEOUT": 2}, ["async_queue.E031"]),
        ({"WORKER_TIMEOUT": 1, "HEARTBEAT_INTERVAL": 0.5}, ["async_queue.E031"]),
    ],
)
def test_bad_settings_are_reported_with_stable_ids(value, expected):
    assert ids(ASYNC_QUEUE=value) == expected


def test_a_short_worker_timeout_names_the_least_value():
    with override_settings(ASYNC_QUEUE={"WORKER_TIMEOUT": 2, "HEARTBEAT_INTERVAL": 1}):
        (error,) = check_settings()
    assert "['WORKER_TIMEOUT'] (2s) must be at least 3 x HEARTBEAT_INTERVAL (3s)" in error.msg
    assert "Raise WORKER_TIMEOUT to 3 or more" in error.hint
    with override_settings(ASYNC_QUEUE={"WORKER_TIMEOUT": 3, "HEARTBEAT_INTERVAL": 1}):
        assert check_settings() == []


def test_unknown_key_hint_lists_the_known_keys():
    with override_settings(ASYNC_QUEUE={"MAX_ATTEMPT": 3}):
        (error,) = check_settings()
    assert "MAX_ATTEMPTS" in error.hint


@pytest.mark.django_db
def test_check_command_fails_on_bad_settings():
    with (
        override_settings(ASYNC_QUEUE={"POLL_INTERVAL": "fast"}),
        pytest.raises(SystemCheckError, match=r"async_queue\.E003"),
    ):
        call_command("check")


def test_the_task_backend_needs_django_6(monkeypatch):
    from async_queue import checks

    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: None)
    for path in ("async_queue.contrib.tasks.QueueBackend", "async_queue.backends.QueueBackend"):
        with override_settings(TASKS={"default": {"BACKEND": path}}):
            assert [m.id for m in checks.check_task_backend()] == ["async_queue.E020"]
    with override_settings(TASKS={}):
        assert checks.check_task_backend() == []


def test_periodic_jobs_must_name_declared_functions():
    from async_queue.checks import check_periodic_jobs

    entry = {"name": "p", "function": "tests.testapp.tasks.undeclared", "interval": 60}
    with override_settings(ASYNC_QUEUE={"PERIODIC": [entry]}):
        (error,) = check_periodic_jobs()
    assert error.id == "async_queue.E008"
    assert "not a declared job" in error.msg
    entry["function"] = "tests.testapp.tasks.echo"
    with override_settings(ASYNC_QUEUE={"PERIODIC": [entry]}):
        assert check_periodic_jobs() == []


def test_every_named_tracker_is_checked_and_named_in_the_message():
    from async_queue.contrib.tracking.checks import check_tracker

    trackers = {
        "good": {"MODEL": "trackerapp.TaskRecord"},
        "bad-name": {"MODEL": "trackerapp.TaskRecord"},
        "missing": {"MODEL": "nope.Nothing"},
    }
    with override_settings(ASYNC_QUEUE={"TRACKERS": trackers}):
        errors = check_tracker()
    assert [error.id for error in errors] == ["async_queue.E018", "async_queue.E011"]
    assert "ASYNC_QUEUE['TRACKERS']['missing']['MODEL']" in errors[1].msg
