"""async_queue.permissions: who sees which jobs, the job's URL for them, and what they may do."""

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User

from async_queue import Job, Status
from async_queue.permissions import (
    ACTION_PERMISSIONS,
    CANCEL_PERMISSION,
    DELETE_PERMISSION,
    RETRY_PERMISSION,
    agranted,
    allowed_actions,
    can_see,
    granted,
    job_url,
    sees_all_jobs,
    visible_jobs,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
urlpatterns: list = []  # a project that does not route the dashboard (pytest.mark.urls)

KINDS = ["anonymous", "inactive owner", "plain", "owner", "staff", "superuser", "inactive staff"]


def make(kind: str, owner: User) -> User | AnonymousUser:
    if kind == "anonymous":
        return AnonymousUser()
    if kind.endswith("owner"):
        user = owner
    else:
        user = {
            "plain": lambda: make_user("plain"),
            "staff": lambda: make_user("staff", staff=True),
            # A superuser without is_staff still sees everything.
            "superuser": lambda: User.objects.create_user("root", is_superuser=True),
            "inactive staff": lambda: make_user("gone", staff=True),
        }[kind]()
    if kind.startswith("inactive"):
        user.is_active = False
        user.save(update_fields=["is_active"])
    return user


@pytest.fixture
def jobs():
    owner = make_user("owner")
    made = {
        "owner's": Job.objects.create(name="tests.testapp.tasks.echo", user=owner),
        "other's": Job.objects.create(name="tests.testapp.tasks.echo", user=make_user("other")),
        "nobody's": Job.objects.create(name="tests.testapp.tasks.echo"),
    }
    return owner, made


VISIBLE = {
    "anonymous": set(),
    "inactive owner": set(),  # not even their own jobs
    "plain": set(),
    "owner": {"owner's"},
    "staff": {"owner's", "other's", "nobody's"},
    "superuser": {"owner's", "other's", "nobody's"},
    "inactive staff": set(),
}


@pytest.mark.parametrize("kind", KINDS)
def test_visible_jobs_and_can_see_agree_for_each_kind_of_user(jobs, kind):
    owner, made = jobs
    user = make(kind, owner)
    visible = set(visible_jobs(user).values_list("pk", flat=True))
    assert visible == {made[label].pk for label in VISIBLE[kind]}
    for job in made.values():
        assert can_see(user, job) == (job.pk in visible), job
    assert sees_all_jobs(user) == (kind in ("staff", "superuser"))


def test_visible_jobs_narrows_a_given_queryset(jobs):
    owner, made = jobs
    root = make_user("root", superuser=True)
    narrowed = Job.objects.exclude(user=None)
    assert set(visible_jobs(root, narrowed)) == {made["owner's"], made["other's"]}
    assert list(visible_jobs(owner, narrowed)) == [made["owner's"]]
    assert not visible_jobs(AnonymousUser(), narrowed).exists()


def test_job_url_only_for_a_user_who_may_see_the_job(jobs):
    owner, made = jobs
    mine, theirs = made["owner's"], made["other's"]
    assert job_url(mine, owner) == f"/jobs/{mine.pk}/"
    assert job_url(theirs, owner) is None
    assert job_url(mine, AnonymousUser()) is None
    assert job_url(theirs, make_user("root", superuser=True)) == f"/jobs/{theirs.pk}/"


@pytest.mark.urls(__name__)
def test_job_url_is_none_when_the_dashboard_is_not_routed(jobs):
    owner, made = jobs
    assert can_see(owner, made["owner's"])
    assert job_url(made["owner's"], owner) is None


def test_granted_names_the_action_permissions_a_user_has():
    assert granted(make_user("root", superuser=True)) == ACTION_PERMISSIONS
    assert granted(make_user("plain")) == frozenset()
    assert granted(AnonymousUser()) == frozenset()
    changer = make_user("changer", "change_job")
    assert granted(changer) == {RETRY_PERMISSION, CANCEL_PERMISSION}
    assert granted(make_user("deleter", "delete_job")) == {DELETE_PERMISSION}
    # Staff status alone grants nothing: the permissions are model permissions.
    assert granted(make_user("staff", staff=True)) == frozenset()


@pytest.mark.django_db(transaction=True)
def test_agranted_agrees_with_granted():
    users = [
        make_user("root", superuser=True),
        make_user("changer", "change_job"),
        make_user("deleter", "delete_job"),
        make_user("plain"),
        AnonymousUser(),
    ]
    for user in users:
        assert async_to_sync(agranted)(user) == granted(user), user


EVERY = ACTION_PERMISSIONS


@pytest.mark.parametrize(
    ("status", "perms", "expected"),
    [
        (Status.QUEUED, EVERY, {"cancel"}),
        (Status.RUNNING, EVERY, {"cancel"}),
        (Status.FAILED, EVERY, {"retry", "delete"}),
        (Status.SUCCEEDED, EVERY, {"delete"}),
        (Status.CANCELLED, EVERY, {"delete"}),
        (Status.QUEUED, {CANCEL_PERMISSION}, {"cancel"}),
        (Status.FAILED, {RETRY_PERMISSION}, {"retry"}),
        (Status.FAILED, {DELETE_PERMISSION}, {"delete"}),
        (Status.QUEUED, {DELETE_PERMISSION}, set()),
        (Status.SUCCEEDED, {RETRY_PERMISSION}, set()),
        (Status.FAILED, frozenset(), set()),
        (Status.RUNNING, frozenset(), set()),
    ],
)
def test_allowed_actions_follow_state_and_permission(status, perms, expected):
    job = Job(name="tests.testapp.tasks.echo", status=status)
    assert allowed_actions(AnonymousUser(), job, frozenset(perms)) == expected


def test_allowed_actions_reads_the_users_permissions_when_not_given():
    failed = Job(name="tests.testapp.tasks.echo", status=Status.FAILED)
    assert allowed_actions(make_user("root", superuser=True), failed) == {"retry", "delete"}
    assert allowed_actions(make_user("changer", "change_job"), failed) == {"retry"}
    assert allowed_actions(make_user("plain"), failed) == frozenset()
