import pytest
from django.db import connection

from async_queue import Job
from async_queue.fields import UnreadableJSON
from tests.faults.stored import forge, nested_list

pytestmark = pytest.mark.django_db(transaction=True)


def test_json_nested_deeper_than_the_decoder_loads_as_a_note():
    job = Job.objects.create(name="x.y")
    forge(job.pk, args=nested_list(12_000), result="[1]")
    job.refresh_from_db()
    assert isinstance(job.args, UnreadableJSON)
    assert job.args == "[unreadable: JSON nested too deeply to decode (24,000 characters)]"
    assert job.result == [1]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="jsonb only stores valid JSON")
def test_text_that_is_not_json_loads_as_a_note():
    job = Job.objects.create(name="x.y")
    forge(job.pk, kwargs='{"a": ')
    job.refresh_from_db()
    assert isinstance(job.kwargs, UnreadableJSON)
    assert job.kwargs.startswith("[unreadable: not valid JSON (Expecting value")


def test_json_strings_and_key_lookups_load_as_before():
    job = Job.objects.create(name="x.y", args="abc", meta={"k": "v", "n": 2})
    job.refresh_from_db()
    assert job.args == "abc"
    assert not isinstance(job.args, UnreadableJSON)
    assert list(Job.objects.values_list("meta__k", "meta__n")) == [("v", 2)]
