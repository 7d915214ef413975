"""Who may see and do what in the dashboard, and what it never shows.

Staff see every job; other signed-in users see only the jobs scheduled for them
(``job.user``); anyone else's job does not exist for them (404). Retrying and
cancelling need ``async_queue.change_job``, deleting needs ``async_queue.delete_job``,
and each action only when the job's state allows it.

What pages never show (credentials in a job's JSON and errors) is ``redaction``'s
call; its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.urls import NoReverseMatch, reverse

from .models import Job, JobQuerySet
from .redaction import REDACTED as REDACTED
from .redaction import SECRET_MARKERS as SECRET_MARKERS
from .redaction import is_secret as is_secret
from .redaction import redact as redact
from .sql import hinted

User = AbstractBaseUser | AnonymousUser

RETRY_PERMISSION = "async_queue.change_job"
CANCEL_PERMISSION = "async_queue.change_job"
DELETE_PERMISSION = "async_queue.delete_job"


def sees_all_jobs(user: User) -> bool:
    active = getattr(user, "is_active", False)
    return bool(
        active and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


def _signed_in(user: User) -> bool:
    return bool(user.is_authenticated and getattr(user, "is_active", True))


def can_see(user: User, job: Job) -> bool:
    """The one visibility rule, for one job: ``visible_jobs()`` without a query."""
    if not _signed_in(user):
        return False
    return sees_all_jobs(user) or (job.user_id is not None and job.user_id == user.pk)


def job_url(job: Job, user: User) -> str | None:
    """The job's dashboard page, if the dashboard is routed and ``user`` may see the job."""
    if not can_see(user, job):
        return None
    try:
        return reverse("async_queue:job-detail", args=[job.pk])
    except NoReverseMatch:
        return None


def visible_jobs(user: User, queryset: JobQuerySet | None = None) -> JobQuerySet:
    """The jobs ``user`` may see: all for staff, their own for other users, none otherwise."""
    jobs = Job.objects.all() if queryset is None else queryset
    if not _signed_in(user):
        return jobs.none()
    if sees_all_jobs(user):
        return jobs
    # Marked rare for SQLite's planner: the user's own jobs are then read through
    # the user index, newest first, whatever share of the table they are.
    return jobs.filter(hinted(jobs.db, True, user_id=user.pk))


ACTION_PERMISSIONS = frozenset({RETRY_PERMISSION, CANCEL_PERMISSION, DELETE_PERMISSION})


def _has_perm(user: User) -> Callable[[str], bool]:
    # Every user model the auth backends serve has it (PermissionsMixin, AnonymousUser);
    # AbstractBaseUser, which the stubs give request.user, does not declare it.
    return user.has_perm  # type: ignore[union-attr]


def granted(user: User) -> frozenset[str]:
    """Which of the dashboard's action permissions ``user`` has."""
    has_perm = _has_perm(user)
    return frozenset(perm for perm in ACTION_PERMISSIONS if has_perm(perm))


async def agranted(user: User) -> frozenset[str]:
    """``granted()`` for async views: the auth backends' async API, no blocking query."""
    has_perm = getattr(user, "ahas_perm", None) or sync_to_async(_has_perm(user))
    return frozenset([perm for perm in ACTION_PERMISSIONS if await has_perm(perm)])


def allowed_actions(user: User, job: Job, perms: frozenset[str] | None = None) -> frozenset[str]:
    """The actions (``"retry"``, ``"cancel"``, ``"delete"``) ``user`` may take on ``job`` now.

    ``perms`` is ``granted(user)`` when the caller has it already (async views must).
    """
    perms = granted(user) if perms is None else perms
    actions = set()
    if job.is_failed and RETRY_PERMISSION in perms:
        actions.add("retry")
    if not job.is_finished and CANCEL_PERMISSION in perms:
        actions.add("cancel")
    if job.is_finished and DELETE_PERMISSION in perms:
        actions.add("delete")
    return frozenset(actions)
