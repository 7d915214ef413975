"""Pause and resume: the API, the claim, the commands, the admin and the dashboard."""

import io
import signal
import time

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import async_queue
from async_queue import Job, JobNotAllowed, Pause, ScheduleError, Status, schedule
from async_queue.models import PauseKind
from async_queue.pausing import pause_job, pause_queue, paused, resume_job, resume_queue
from async_queue.sql import dialect
from async_queue.worker import Worker
from tests.conftest import login, make_user, wait_for
from tests.testapp import tasks
from tests.testapp.models import Record

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "tests.testapp.tasks.echo"
RECORD = "tests.testapp.tasks.record"


def drain() -> list[str]:
    """Run what a worker would claim now; returns the labels recorded, in order."""
    with Worker(worker_id="w") as worker:
        worker.drain()
    return list(Record.objects.order_by("pk").values_list("label", flat=True))


# -- the API ------------------------------------------------------------------------------


def test_pausing_and_resuming_a_queue_is_idempotent():
    assert pause_queue("emails", reason="provider down") is True
    assert pause_queue("emails", reason="another reason") is False
    (pause,) = paused()
    assert (pause.kind, pause.value, pause.reason) == ("queue", "emails", "provider down")
    assert pause.paused_at is not None
    assert resume_queue("emails") is True
    assert resume_queue("emails") is False
    assert paused() == []


def test_a_job_is_paused_by_its_function_or_its_dotted_name():
    assert pause_job(tasks.record) is True
    assert pause_job(RECORD) is False  # the same name
    assert [(p.kind, p.value) for p in paused()] == [("name", RECORD)]
    assert resume_job(tasks.record) is True
    assert not Pause.objects.exists()


def test_paused_lists_queues_first_then_job_names():
    pause_job(tasks.echo)
    pause_queue("zeta")
    pause_queue("alpha")
    assert [(p.kind, p.value) for p in paused()] == [
        ("queue", "alpha"),
        ("queue", "zeta"),
        ("name", ECHO),
    ]


def test_who_paused_is_recorded_and_an_anonymous_user_is_nobody():
    alice = make_user("alice")
    pause_queue("emails", user=alice)
    pause_queue("reports", user=AnonymousUser())
    by = {p.value: p.paused_by for p in paused()}
    assert by == {"emails": alice, "reports": None}
    with pytest.raises(ValueError, match="saved user instance"):
        pause_queue("other", user=User(username="unsaved"))
    with pytest.raises(ValueError, match="saved user instance"):
        pause_queue("other", user="alice")


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ("", "is not a queue name"),
        ("   ", "is not a queue name"),
        (None, "is not a queue name"),
        ("q" * 101, "queue names are at most 100"),
    ],
)
def test_a_bad_queue_name_is_refused(queue, message):
    with pytest.raises(ValueError, match=message):
        pause_queue(queue)
    assert not Pause.objects.exists()


def test_a_too_long_reason_is_refused_and_nothing_is_paused():
    with pytest.raises(ValueError, match="shorten it to at most 255"):
        pause_queue("emails", reason="x" * 256)
    assert not Pause.objects.exists()


def test_only_a_declared_job_can_be_paused_by_name():
    with pytest.raises(JobNotAllowed, match="not a declared job"):
        pause_job(tasks.undeclared)
    with pytest.raises(JobNotAllowed, match="not a dotted path"):
        pause_job("send_mail")
    with pytest.raises(ScheduleError, match=r"Cannot pause 'tests\.testapp\.tasks\.gone'.*no attr"):
        pause_job("tests.testapp.tasks.gone")
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        pause_job("os.system")
    assert not Pause.objects.exists()


def test_a_name_that_is_no_longer_declared_can_still_be_resumed():
    Pause.objects.create(kind=PauseKind.NAME, value="myapp.removed.job")
    assert resume_job("myapp.removed.job") is True


def test_the_api_is_exported_from_the_package():
    for name in ("pause_queue", "resume_queue", "pause_job", "resume_job", "paused", "Pause"):
        assert name in async_queue.__all__
        assert getattr(async_queue, name) is not None
    assert async_queue.pause_queue is pause_queue


# -- the claim ----------------------------------------------------------------------------


def test_workers_claim_nothing_from_a_paused_queue_while_other_queues_run():
    schedule(tasks.record, ["mail 1"], queue="mail")
    schedule(tasks.record, ["default 1"])
    pause_queue("mail")
    assert drain() == ["default 1"]
    mail = Job.objects.get(queue="mail")
    assert (mail.status, mail.attempts, mail.started_at) == (Status.QUEUED, 0, None)
    schedule(tasks.record, ["mail 2"], queue="mail")  # scheduling goes on while paused
    assert drain() == ["default 1"]
    resume_queue("mail")
    assert drain() == ["default 1", "mail 1", "mail 2"]


def test_workers_claim_nothing_of_a_paused_job_name_in_any_queue():
    schedule(tasks.record, ["mail"], queue="mail")
    schedule(tasks.record, ["default"])
    other = schedule(tasks.echo, [1], queue="mail")
    pause_job(tasks.record)
    assert drain() == []
    assert Job.objects.get(pk=other.pk).status == Status.SUCCEEDED
    assert set(Job.objects.filter(name=RECORD).values_list("status", flat=True)) == {"queued"}
    resume_job(RECORD)
    assert sorted(drain()) == ["default", "mail"]


def test_a_paused_job_is_skipped_in_claim_order_not_blocking_the_rest():
    """The highest-priority job is paused: the next one is claimed instead."""
    schedule(tasks.record, ["urgent"], queue="mail", priority=10)
    schedule(tasks.record, ["normal"])
    pause_queue("mail")
    job = dialect("default").claim("w")
    assert job is not None
    assert job.args == ["normal"]


def test_a_claim_with_pauses_is_still_one_statement(django_assert_num_queries):
    pause_queue("mail")
    pause_job(tasks.echo)
    schedule(tasks.record, ["x"])
    with django_assert_num_queries(1):
        assert dialect("default").claim("w") is not None


def test_a_running_job_finishes_when_its_queue_is_paused():
    job = schedule(tasks.record, ["running"], queue="mail")
    claimed = dialect("default").claim("w")
    assert claimed is not None
    assert claimed.pk == job.pk
    pause_queue("mail")
    assert Worker(worker_id="w").run(claimed).status == Status.SUCCEEDED
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_execute_runs_the_job_it_is_given_even_when_paused():
    """Job.execute() is an explicit request for one job, not a worker looking for work."""
    queued = schedule(tasks.record, ["by hand"], queue="mail")
    pause_queue("mail")
    pause_job(tasks.record)
    assert queued.execute().status == Status.SUCCEEDED
    assert drain() == ["by hand"]


@pytest.mark.postgres
def test_resuming_notifies_listening_workers_and_pausing_does_not():
    waiter = dialect("default").waiter()
    assert waiter.wait(0.01) is False  # now listening
    pause_queue("mail")
    assert waiter.wait(0.2) is False
    resume_queue("mail")
    assert waiter.wait(2) is True


@pytest.mark.postgres
def test_resume_wakes_an_idle_worker_at_once(start_worker):
    pause_queue("mail")
    schedule(tasks.record, ["warm-up"])
    job = schedule(tasks.record, ["paused"], queue="mail")
    worker = start_worker("--forever", "--sleep", "30")
    wait_for(lambda: Record.objects.filter(label="warm-up").exists())
    time.sleep(0.5)  # idle, listening, 30 s before its next poll
    resumed = time.monotonic()
    resume_queue("mail")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.SUCCEEDED, timeout=10)
    assert time.monotonic() - resumed < 5  # a poll would have taken 30 s
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0


# -- the commands -------------------------------------------------------------------------


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_pause_queue_and_resume_queue_commands():
    assert command("pause_queue", "emails", "reports", "--reason", "deploy") == (
        "Queue 'emails' paused.\nQueue 'reports' paused.\n",
        "",
    )
    assert command("pause_queue", "emails")[0] == "Queue 'emails' was paused already.\n"
    assert command("pause_queue", "--job", RECORD)[0] == f"Job '{RECORD}' paused.\n"
    listed = command("pause_queue", "--list")[0].splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["queue", "emails"],
        ["queue", "reports"],
        ["name", RECORD],
    ]
    assert listed[0].endswith(": deploy")
    assert command("resume_queue", "emails", "--job", RECORD) == (
        f"Queue 'emails' resumed.\nJob '{RECORD}' resumed.\n",
        "",
    )
    assert [p.value for p in paused()] == ["reports"]
    assert command("pause_queue", "-v", "0", "other") == ("", "")
    assert command("resume_queue", "--all")[0] == (
        "Queue 'other' resumed.\nQueue 'reports' resumed.\n"
    )
    assert command("pause_queue", "--list")[0] == "Nothing is paused.\n"


def test_resuming_what_is_not_paused_says_so_and_shows_what_is():
    pause_queue("emails")
    out, err = command("resume_queue", "emial")
    assert out == ""
    assert err == "Not paused: queue 'emial'. Paused now: queue 'emails'.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause_queue"], "Name what to pause"),
        (["resume_queue"], "Name what to resume"),
        (["pause_queue", "--job", "tests.testapp.tasks.undeclared"], "not a declared job"),
        (["pause_queue", "q" * 101], "queue names are at most 100"),
    ],
)
def test_the_commands_refuse_bad_input_naming_the_fix(args, message):
    with pytest.raises(CommandError, match=message):
        command(*args)
    assert not Pause.objects.exists()


def test_the_command_exits_1_on_bad_input_and_0_otherwise(manage):
    refused = manage("pause_queue", "--job", "os.system", check=False)
    assert refused.returncode == 1
    assert "outside the installed apps" in refused.stderr
    assert manage("pause_queue", "emails").returncode == 0
    assert paused()[0].value == "emails"  # stored: it outlives the process


# -- the admin ----------------------------------------------------------------------------


def test_the_admin_adds_a_pause_as_the_signed_in_user_and_deletes_to_resume(
    superuser_client, superuser
):
    add = reverse("admin:async_queue_pause_add")
    response = superuser_client.post(add, {"kind": "queue", "value": "emails", "reason": "r"})
    assert response.status_code == 302
    pause = Pause.objects.get()
    assert (pause.value, pause.paused_by) == ("emails", superuser)
    response = superuser_client.post(add, {"kind": "name", "value": "os.system", "reason": ""})
    assert response.status_code == 200
    assert b"outside the installed apps" in response.content
    response = superuser_client.post(add, {"kind": "queue", "value": "emails", "reason": ""})
    assert b"already exists" in response.content
    change = superuser_client.get(reverse("admin:async_queue_pause_change", args=[pause.pk]))
    assert b'name="value"' not in change.content  # what is paused cannot change
    assert b'name="reason"' in change.content
    changelist = reverse("admin:async_queue_pause_changelist")
    assert b"emails" in superuser_client.get(changelist).content
    response = superuser_client.post(
        changelist, {"action": "resume", "_selected_action": [pause.pk]}, follow=True
    )
    assert b"Resumed 1 paused queue(s) or job(s)." in response.content
    assert not Pause.objects.exists()


# -- the dashboard ------------------------------------------------------------------------

LIST = "/jobs/"
RESUME_BUTTON = 'value="resume"'


def pause_url() -> str:
    return reverse("async_queue:pause")


def resume_url(pause: Pause) -> str:
    return reverse("async_queue:resume", args=[pause.pk])


def test_every_dashboard_user_sees_what_is_paused_but_not_by_whom(user_client):
    pause_queue("emails", reason="provider down", user=make_user("ops"))
    content = user_client.get(LIST).content.decode()
    assert "Queue <code>emails</code> is paused" in content
    assert "provider down" in content
    assert "by ops" not in content
    assert RESUME_BUTTON not in content
    assert "Pause a queue or a job" not in content


def test_staff_without_permissions_see_who_paused_but_may_not_act(staff_client):
    pause_queue("emails", user=make_user("ops"))
    content = staff_client.get(LIST).content.decode()
    assert "by ops" in content
    assert RESUME_BUTTON not in content
    assert "Pause a queue or a job" not in content
    pause = Pause.objects.get()
    assert staff_client.post(pause_url(), {"kind": "queue", "value": "x"}).status_code == 403
    assert staff_client.post(resume_url(pause)).status_code == 403
    assert [p.value for p in paused()] == ["emails"]


def test_a_superuser_pauses_and_resumes_from_the_dashboard(superuser_client, superuser):
    assert "Pause a queue or a job" in superuser_client.get(LIST).content.decode()
    response = superuser_client.post(
        pause_url(),
        {"kind": "queue", "value": "emails", "reason": "deploy", "next": f"{LIST}?status=queued"},
        follow=True,
    )
    assert response.redirect_chain == [(f"{LIST}?status=queued", 302)]
    content = response.content.decode()
    assert "Queue &#x27;emails&#x27; paused: workers start none of its jobs" in content
    assert "Queue <code>emails</code> is paused" in content
    pause = Pause.objects.get()
    assert (pause.paused_by, pause.reason) == (superuser, "deploy")
    again = superuser_client.post(pause_url(), {"kind": "queue", "value": "emails"}, follow=True)
    assert "was paused already" in again.content.decode()
    response = superuser_client.post(resume_url(pause), {"next": LIST}, follow=True)
    assert "Queue &#x27;emails&#x27; resumed" in response.content.decode()
    assert not Pause.objects.exists()
    late = superuser_client.post(resume_url(pause), follow=True)  # another tab resumed it
    assert "That pause was resumed already." in late.content.decode()


def test_a_bad_pause_from_the_dashboard_is_explained_and_writes_nothing(superuser_client):
    for data, message in [
        ({"kind": "name", "value": "os.system"}, "outside the installed apps"),
        ({"kind": "queue", "value": ""}, "Name: This field is required."),
        ({"kind": "bogus", "value": "x"}, "Select a valid choice."),
    ]:
        response = superuser_client.post(pause_url(), data, follow=True)
        content = response.content.decode()
        assert "Nothing was paused." in content
        assert message in content, content
    assert not Pause.objects.exists()


def test_pausing_and_resuming_need_their_own_permissions(client):
    pauser = login(Client(), make_user("pauser", "async_queue.add_pause"))
    resumer = login(Client(), make_user("resumer", "async_queue.delete_pause"))
    page = pauser.get(LIST).content.decode()
    assert "Pause a queue or a job" in page
    assert pauser.post(pause_url(), {"kind": "name", "value": RECORD}).status_code == 302
    pause = Pause.objects.get()
    assert RESUME_BUTTON not in pauser.get(LIST).content.decode()
    assert pauser.post(resume_url(pause)).status_code == 403
    page = resumer.get(LIST).content.decode()
    assert RESUME_BUTTON in page
    assert "Pause a queue or a job" not in page
    assert resumer.post(pause_url(), {"kind": "queue", "value": "x"}).status_code == 403
    assert resumer.post(resume_url(pause)).status_code == 302
    assert not Pause.objects.exists()


def test_pause_and_resume_are_post_only_signed_in_and_csrf_checked(superuser):
    pause = Pause.objects.create(kind=PauseKind.QUEUE, value="emails")
    anonymous = Client()
    for url in (pause_url(), resume_url(pause)):
        response = anonymous.post(url, {"kind": "queue", "value": "x"})
        assert response.status_code == 302
        assert "/login/" in response["Location"]
        assert login(Client(), superuser).get(url).status_code == 405
        strict = login(Client(enforce_csrf_checks=True), superuser)
        assert strict.post(url, {"kind": "queue", "value": "x"}).status_code == 403
    assert [p.value for p in paused()] == ["emails"]


def test_an_outside_next_url_is_not_followed(superuser_client):
    response = superuser_client.post(
        pause_url(), {"kind": "queue", "value": "emails", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("async_queue:job-list")


def test_the_job_list_costs_one_query_more_for_the_pauses(superuser_client):
    schedule(tasks.echo)
    pause_queue("emails")
    pause_job(tasks.record)
    with CaptureQueriesContext(connection) as queries:
        superuser_client.get(LIST)
    pause_queries = [q for q in queries.captured_queries if "async_queue_pause" in q["sql"]]
    assert len(pause_queries) == 1
    fragment = superuser_client.get(LIST, headers={"HX-Request": "true"})
    assert b"aq-pauses" not in fragment.content  # the htmx results alone do not repeat it
