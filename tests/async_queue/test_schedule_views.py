"""Schedules in the dashboard and the admin: list, create, edit, enable/disable, run now."""

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from async_queue import Job
from async_queue.models import Schedule
from async_queue.periodic import schedule_due
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db
ECHO = "tests.testapp.tasks.echo"
CODE = {
    "PERIODIC": [
        {"name": "code-tick", "function": ECHO, "cron": "*/5 * * * *", "timezone": "Asia/Tokyo"},
        {"name": "code-interval", "function": ECHO, "interval": 600},
    ]
}
LIST = reverse("async_queue:schedule-list")
NEW = reverse("async_queue:schedule-create")


def make(**fields) -> Schedule:
    return Schedule.objects.create(
        **{"name": "nightly", "function": ECHO, "cron": "30 2 * * *", **fields}
    )


def url(name: str, schedule: Schedule) -> str:
    return reverse(f"async_queue:schedule-{name}", args=[schedule.pk])


def posted(**data) -> dict:
    values = {"name": "made", "function": ECHO, "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    values |= {"args": "[1]", "kwargs": '{"a": "b"}', "queue": "", "priority": "", "enabled": "on"}
    return {**values, **data}


def editor(client: Client) -> Client:
    """Not staff; may add and change schedules (which lets them see the list)."""
    user = make_user("editor", "async_queue.add_schedule", "async_queue.change_schedule")
    return login(client, user)


# -- who sees what ------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_log_in_and_plain_users_refused(client, plain_user):
    make()
    for target in (LIST, NEW, url("edit", make(name="other"))):
        response = client.get(target)
        assert response.status_code == 302
        assert response.url.startswith("/accounts/login/")
    login(client, plain_user)
    assert client.get(LIST).status_code == 403
    assert b"Schedules" not in client.get(reverse("async_queue:job-list")).content


def test_a_user_with_the_view_permission_sees_the_list_without_buttons(client):
    make(kwargs={"password": "hunter2"})
    login(client, make_user("viewer", "async_queue.view_schedule"))
    response = client.get(LIST)
    content = response.content.decode()
    assert response.status_code == 200
    assert "nightly" in content
    assert "hunter2" not in content  # arguments are redacted as on a job's page
    assert "Run now" not in content
    assert "New schedule" not in content


@override_settings(ASYNC_QUEUE=CODE)
def test_staff_see_database_and_code_schedules_with_their_next_run(staff_client):
    make(timezone="Europe/Berlin")
    response = staff_client.get(LIST)
    content = response.content.decode()
    for name in ("nightly", "code-tick", "code-interval"):
        assert f'data-name="{name}"' in content
    assert content.count("not yet seen by a worker") == 2  # no worker has copied them yet
    assert "every 600 s" in content
    assert "JST" in content  # code-tick's next run, on Tokyo's clock
    assert "Run now" not in content  # staff without change_schedule
    schedule_due()
    content = staff_client.get(LIST).content.decode()
    assert "not yet seen by a worker" not in content
    assert 'data-source="settings"' in content
    assert "Schedules</a>" in staff_client.get(reverse("async_queue:job-list")).content.decode()


# -- create and edit -----------------------------------------------------------------------


def test_an_editor_creates_a_schedule_and_returns_to_the_list_with_a_message(client):
    editor(client)
    assert client.get(NEW).status_code == 200
    response = client.post(NEW, posted(), follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert "Schedule &#x27;made&#x27; was created." in response.content.decode()
    made = Schedule.objects.get(name="made")
    assert (made.source, made.cron, made.timezone) == ("database", "0 3 * * *", "Europe/Berlin")
    assert (made.args, made.kwargs, made.enabled) == ([1], {"a": "b"}, True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "0 25 * * *"}, "Bad cron expression"),
        ({"function": "os.system"}, "is not a declared job"),
        ({"timezone": "Atlantis/Capital"}, "Select a valid choice"),
        ({"args": "{}"}, "args must be a list"),
    ],
)
def test_an_invalid_schedule_is_shown_again_with_the_reason(client, data, message):
    editor(client)
    response = client.post(NEW, posted(**data))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_an_editor_edits_cron_zone_and_arguments(client):
    schedule = make()
    editor(client)
    assert client.get(url("edit", schedule)).status_code == 200
    data = posted(name="nightly", cron="15 4 * * *", timezone="America/New_York", args="[]")
    response = client.post(url("edit", schedule), data)
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone, schedule.args) == (
        "15 4 * * *",
        "America/New_York",
        [],
    )


@override_settings(ASYNC_QUEUE=CODE)
def test_a_code_schedule_cannot_be_edited_here(client):
    schedule_due()
    code = Schedule.objects.get(name="code-tick")
    editor(client)
    response = client.get(url("edit", code))
    assert response.status_code == 403
    assert client.post(url("edit", code), posted(name="code-tick")).status_code == 403
    assert 'href="/jobs/schedules/' not in client.get(LIST).content.decode().split("code-tick")[1]


def test_adding_and_changing_need_their_permissions(client):
    schedule = make()
    login(client, make_user("viewer", "async_queue.view_schedule"))
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, posted()).status_code == 403
    assert client.post(url("edit", schedule), posted(name="nightly")).status_code == 403
    for action in ("enable", "disable", "run"):
        assert client.post(url(action, schedule)).status_code == 403
    assert not Job.objects.exists()


# -- enable, disable, run now --------------------------------------------------------------


def test_disable_and_enable_return_to_the_list_with_a_message(client):
    schedule = make()
    editor(client)
    response = client.post(url("disable", schedule), follow=True)
    assert "was disabled." in response.content.decode()
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_tick_at) == (False, None)
    response = client.post(url("enable", schedule), follow=True)
    assert "was enabled; its next run is at" in response.content.decode()
    schedule.refresh_from_db()
    assert schedule.enabled
    assert schedule.next_tick_at is not None


@override_settings(ASYNC_QUEUE=CODE)
def test_run_now_queues_a_job_for_database_and_code_schedules(client):
    schedule = make(args=[3])
    schedule_due()
    code = Schedule.objects.get(name="code-tick")
    editor(client)
    response = client.post(url("run", schedule), follow=True)
    job = Job.objects.get(meta__run_now=True)
    assert f"job {job.pk} was queued to run now." in response.content.decode()
    assert (job.name, job.args, job.user.username) == (ECHO, [3], "editor")
    client.post(url("run", code))
    assert Job.objects.filter(meta__periodic="code-tick", meta__run_now=True).count() == 1
    assert client.post(url("run", code), follow=True).status_code == 200
    code.enabled = False
    code.save()
    client.post(url("enable", code))
    code.refresh_from_db()
    assert code.enabled


def test_actions_are_post_only_and_need_csrf(superuser):
    schedule = make()
    client = login(Client(enforce_csrf_checks=True), superuser)
    for action in ("enable", "disable", "run"):
        assert client.get(url(action, schedule)).status_code == 405
        assert client.post(url(action, schedule)).status_code == 403  # no CSRF token
    assert client.post(NEW, posted()).status_code == 403
    assert not Job.objects.exists()
    assert Schedule.objects.get().enabled


def test_an_unknown_schedule_is_404(superuser_client):
    assert superuser_client.get(reverse("async_queue:schedule-edit", args=[999])).status_code == 404
    assert superuser_client.post(reverse("async_queue:schedule-run", args=[999])).status_code == 404


# -- the admin -----------------------------------------------------------------------------


def test_the_admin_creates_validates_and_edits_database_schedules(superuser_client):
    add = reverse("admin:async_queue_schedule_add")
    assert superuser_client.get(add).status_code == 200
    response = superuser_client.post(add, posted(function="tests.testapp.tasks.undeclared"))
    assert response.status_code == 200
    assert "@async_queue.job" in response.content.decode()
    response = superuser_client.post(add, posted())
    assert response.status_code == 302
    made = Schedule.objects.get()
    change = reverse("admin:async_queue_schedule_change", args=[made.pk])
    assert (
        superuser_client.post(change, posted(name="made", cron="*/10 * * * *")).status_code == 302
    )
    made.refresh_from_db()
    assert made.cron == "*/10 * * * *"
    changelist = superuser_client.get(reverse("admin:async_queue_schedule_changelist"))
    assert b"*/10 * * * *" in changelist.content


@override_settings(ASYNC_QUEUE=CODE)
def test_a_code_schedule_in_the_admin_is_read_only_but_for_enabled(superuser_client):
    schedule_due()
    code = Schedule.objects.get(name="code-tick")
    change = reverse("admin:async_queue_schedule_change", args=[code.pk])
    content = superuser_client.get(change).content.decode()
    assert 'name="cron"' not in content
    assert 'name="enabled"' in content
    assert superuser_client.post(change, {}).status_code == 302  # unticked: disabled
    code.refresh_from_db()
    assert (code.enabled, code.cron) == (False, "*/5 * * * *")
    delete = reverse("admin:async_queue_schedule_delete", args=[code.pk])
    assert superuser_client.get(delete).status_code == 403  # declared: it would come back


def test_admin_actions_run_enable_and_disable(superuser_client):
    schedule = make()
    changelist = reverse("admin:async_queue_schedule_changelist")
    selected = {"_selected_action": [schedule.pk]}
    response = superuser_client.post(
        changelist, {"action": "disable_schedules", **selected}, follow=True
    )
    assert b"Disabled 1 schedule(s)." in response.content
    schedule.refresh_from_db()
    assert not schedule.enabled
    superuser_client.post(changelist, {"action": "enable_schedules", **selected})
    schedule.refresh_from_db()
    assert schedule.enabled
    response = superuser_client.post(
        changelist, {"action": "run_schedules_now", **selected}, follow=True
    )
    assert b"queued to run now." in response.content
    assert Job.objects.get().meta == {
        "periodic": "nightly",
        "schedule": schedule.pk,
        "run_now": True,
    }


def test_deleting_a_database_schedule_in_the_admin_forgets_its_ticks(superuser_client):
    from async_queue.models import PeriodicTick

    schedule = make()
    PeriodicTick.objects.create(name=schedule.tick_name, tick_at=schedule.next_tick_at)
    changelist = reverse("admin:async_queue_schedule_changelist")
    data = {"action": "delete_selected", "_selected_action": [schedule.pk], "post": "yes"}
    assert superuser_client.post(changelist, data).status_code == 302
    assert not Schedule.objects.exists()
    assert not PeriodicTick.objects.exists()
