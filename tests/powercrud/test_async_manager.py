"""The async manager hook: a view routes its jobs to a project's tracker by configuration."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from async_queue import Job, ScheduleError, Status, schedule
from async_queue.contrib.tracking import receivers as tracking
from powercrud.async_manager import AsyncManager, AsyncManagerConfigError
from tests.conftest import wait_for
from tests.crudapp.bulk_views import TRACKER, QuickBookView
from tests.crudapp.helpers import choose, edit, make_books
from tests.crudapp.models import Book
from tests.crudapp.tasks import PatientManager
from tests.trackerapp.models import TaskRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.bulk_urls")]


@pytest.fixture(autouse=True)
def fresh_tracker():
    tracking._cache = None
    yield
    tracking._cache = None


@pytest.fixture
def admin(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return user


# -- the manager ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"queu": "bulk"}, "unknown key 'queu'"),
        ({"priority": "high"}, r"\['priority'\] = 'high' has the wrong type"),
        ({"max_attempts": True}, "wrong type"),
        ({"tracker": "nope"}, r"\['tracker'\]: tracker='nope' is not a key of .*'bulk'"),
        ({"tracker": True}, r"name a key of ASYNC_QUEUE\['TRACKERS'\]"),
        ({"tracker": {"MODEL": "trackerapp.TaskRecord"}}, "wrong type"),
    ],
)
def test_a_configuration_that_cannot_work_is_refused(config, message):
    with pytest.raises(AsyncManagerConfigError, match=message):
        AsyncManager(config)


def test_the_view_picks_its_manager_class_and_configuration(admin):
    view = QuickBookView()
    view.setup(RequestFactory().get("/"))
    assert type(view.get_async_manager()) is AsyncManager
    view.async_manager_class = "tests.crudapp.tasks.PatientManager"
    view.async_manager_config = {"priority": 5}
    manager = view.get_async_manager()
    assert isinstance(manager, PatientManager)
    job = manager.schedule(
        "powercrud.jobs.bulk_delete", {"model": "crudapp.book", "pks": []}, locks=[], user=admin
    )
    job.refresh_from_db()
    assert (job.queue, job.priority, job.max_attempts, job.user) == ("patient", 5, 3, admin)
    assert job.meta == {"powercrud": {}}


def test_a_job_retrying_after_a_failed_attempt_says_so(admin):
    manager = AsyncManager({"max_attempts": 2})
    job = manager.schedule("tests.trackerapp.tasks.fail", {"message": "flaky"}, locks=[])
    job.execute()
    status = manager.status(job)
    assert (status.state, status.finished) == ("queued", False)
    assert status.message == "Attempt 1 failed (RuntimeError: flaky); retrying…"


def test_by_default_status_and_errors_come_from_the_job_rows(admin):
    manager = AsyncManager()
    job = manager.schedule("tests.trackerapp.tasks.fail", {"message": "no\nway"}, locks=[])
    assert manager.status(job).state == "queued"
    job.execute()
    status = manager.status(job)
    assert (status.state, status.finished, status.succeeded) == ("failed", True, False)
    assert status.error_lines == ["no", "way"]  # the full message, not the row's summary
    assert job.last_error == "RuntimeError: no\nway"


# -- routing jobs to a tracker ----------------------------------------------------------------


def test_a_views_jobs_are_mirrored_into_its_tracker_with_configuration_only(client, admin):
    assert tracking.queue_settings.TRACKER is None  # no global tracker
    books = make_books(2)
    choose(client, books, "trackedbook")
    assert edit(client, "trackedbook", status="published").status_code == 202
    job = Job.objects.get()
    assert job.queue == "bulk"
    assert job.tracker == TRACKER
    assert "tracker" not in job.meta
    record = TaskRecord.objects.get(job_id=job.pk)
    assert (record.state, record.owner) == ("queued", admin)

    job.execute()
    record.refresh_from_db()
    assert (record.state, record.percent) == ("succeeded", 100)
    assert record.result["updated"] == 2
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}
    schedule("tests.trackerapp.tasks.add", [1, 2])  # other jobs: not tracked
    assert TaskRecord.objects.count() == 1


def test_a_worker_process_uses_the_jobs_own_tracker_configuration(client, admin, start_worker):
    books = make_books(3)
    choose(client, books, "trackedbook")
    edit(client, "trackedbook", in_print="False")
    job = Job.objects.get()
    worker = start_worker("--forever", "--sleep", "0.1")
    wait_for(lambda: TaskRecord.objects.filter(job_id=job.pk, state="succeeded").exists())
    worker.send_signal(15)
    assert worker.wait() == 0, worker.stderr
    assert TaskRecord.objects.get(job_id=job.pk).percent == 100
    assert not Book.objects.filter(in_print=True).exists()


# -- async_queue.tracking: a job's own configuration -------------------------------------------


def test_a_jobs_named_tracker_wins_over_the_setting_and_false_turns_it_off(settings):
    named = settings.ASYNC_QUEUE["TRACKERS"][TRACKER]
    other = {**named, "STATUS_MAP": {"queued": "waiting"}}
    settings.ASYNC_QUEUE = {**settings.ASYNC_QUEUE, "TRACKER": other}
    own = schedule("tests.trackerapp.tasks.add", [1, 2], tracker=TRACKER, on_commit=False)
    off = schedule("tests.trackerapp.tasks.add", [1, 2], tracker=False, on_commit=False)
    plain = schedule("tests.trackerapp.tasks.add", [1, 2], on_commit=False)
    assert (own.tracker, off.tracker, plain.tracker) == (TRACKER, "-", "")
    assert tracking.config_for(own) == named
    assert tracking.config_for(off) is None
    assert tracking.config_for(plain) == other
    states = dict(TaskRecord.objects.values_list("job_id", "state"))
    assert states == {own.pk: "queued", plain.pk: "waiting"}


def test_meta_never_configures_a_tracker_and_unknown_names_are_refused(settings):
    forged = {"MODEL": "auth.User", "FIELDS": {"status": "is_superuser"}}
    job = Job.objects.create(name="tests.trackerapp.tasks.add", meta={"tracker": forged})
    assert tracking.config_for(job) is None  # no TRACKER setting: nothing
    with pytest.raises(ScheduleError, match=r"tracker='other' is not a key"):
        schedule("tests.trackerapp.tasks.add", [1, 2], tracker="other")
    gone = Job.objects.create(name="tests.trackerapp.tasks.add", tracker="removed")
    assert tracking.config_for(gone) is None


def test_trackers_of_several_configurations_are_kept_side_by_side(settings):
    settings.ASYNC_QUEUE = {**settings.ASYNC_QUEUE, "TRACKER": {"MODEL": "trackerapp.TaskRecord"}}
    named = settings.ASYNC_QUEUE["TRACKERS"][TRACKER]
    global_tracker = tracking.get_tracker()
    own = tracking.get_tracker(named)
    assert own is not global_tracker
    assert tracking.get_tracker() is global_tracker  # not rebuilt: its per-job state survives
    assert tracking.get_tracker(dict(named)) is own
    for n in range(tracking.CACHE_SIZE):
        tracking.get_tracker({**named, "STATUS_MAP": {"queued": f"q{n}"}})
    assert tracking.get_tracker(named) is not own  # the oldest went


def test_the_status_endpoint_reads_the_job_rows_of_a_tracked_view(client, admin):
    books = make_books(1)
    choose(client, books, "trackedbook")
    edit(client, "trackedbook", status="archived")
    job = Job.objects.get()
    job.execute()
    response = client.get(
        reverse("trackedbook-bulk-status", kwargs={"job_pk": job.pk}), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 286
    assert job.status == Status.SUCCEEDED
