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
    assert ids(ASYNC_QUEUE={"MAX_ATTEMPTS": 3, "ALLOWED_MODULES": ["myapp"]}) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ["async_queue.E001"]),
        ({"MAX_ATTEMPT": 3}, ["async_queue.E002"]),
        ({"MAX_ATTEMPTS": "3"}, ["async_queue.E003"]),
        ({"MAX_ATTEMPTS": True}, ["async_queue.E003"]),
        ({"BACKOFF_MAX": -1}, ["async_queue.E004"]),
        ({"ALLOWED_MODULES": [""]}, ["async_queue.E005"]),
        ({"MAX_ATTEMPTS": 0}, ["async_queue.E006"]),
    ],
)
def test_bad_settings_are_reported_with_stable_ids(value, expected):
    assert ids(ASYNC_QUEUE=value) == expected


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
