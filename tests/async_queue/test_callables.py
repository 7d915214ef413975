"""async_queue.callables: what may run, found by name, and how refusals name the fix."""

import importlib.util
import inspect
import sys

import pytest
from django.test import override_settings

import async_queue
from async_queue import Job, ScheduleError, schedule
from async_queue.callables import (
    JobOptions,
    declaration,
    declared_options,
    dotted_name,
    find,
    in_installed_app,
    listed_jobs,
    resolve,
)
from async_queue.exceptions import JobNotAllowed
from tests.testapp import tasks
from tests.testapp.models import Counter

HOW_TO_DECLARE = r"decorate it with @async_queue\.job or list it in ASYNC_QUEUE\['JOBS'\]"
needs_django_tasks = pytest.mark.skipif(
    importlib.util.find_spec("django.tasks") is None, reason="django.tasks needs Django 6.0+"
)


@async_queue.job
def declared_outside_the_apps() -> str:
    """Declared, but its module is not inside an installed app (``tests`` is not one)."""
    return "ran"


class Liar:
    """Answers any attribute, the job marker included."""

    def __getattr__(self, name: str) -> object:
        return JobOptions(name="tests.testapp.tasks.record")


# -- @job --------------------------------------------------------------------------------


def test_bare_job_marks_the_function_and_returns_it():
    assert declared_options(tasks.echo) == JobOptions(name="tests.testapp.tasks.echo")
    assert tasks.echo(1, a=2) == {"args": [1], "kwargs": {"a": 2}}  # callable, unwrapped
    assert async_queue.job(tasks.echo) is tasks.echo


def test_job_with_options_records_them():
    assert declared_options(tasks.mail_job) == JobOptions(
        name="tests.testapp.tasks.mail_job", queue="mail", priority=7, max_attempts=2, timeout=30
    )


@pytest.mark.django_db(transaction=True)
def test_job_decorator_returns_the_function_and_its_defaults_apply():
    assert tasks.mail_job() == "sent"  # still directly callable
    job = schedule(tasks.mail_job, on_commit=False)
    assert (job.queue, job.priority, job.max_attempts, job.timeout) == ("mail", 7, 2, 30.0)
    job = schedule(
        "tests.testapp.tasks.mail_job",
        queue="other",
        priority=0,
        max_attempts=9,
        timeout=5,
        on_commit=False,
    )
    assert (job.queue, job.priority, job.max_attempts, job.timeout) == ("other", 0, 9, 5)


def test_job_decorator_refuses_what_a_worker_could_not_import():
    def inner():
        pass

    with pytest.raises(TypeError, match="not a module-level function"):
        async_queue.job(inner)
    with pytest.raises(TypeError, match="not a module-level function"):
        async_queue.job(lambda: None)
    with pytest.raises(TypeError, match="module-level function"):
        async_queue.job(42)


def test_only_a_real_marker_declares():
    assert declared_options(tasks.undeclared) is None
    assert declared_options(Liar()) is None  # read statically, not through __getattr__


# -- find, resolve -----------------------------------------------------------------------


def test_find_returns_declared_functions_only():
    assert find("tests.testapp.tasks.record") is tasks.record
    with pytest.raises(JobNotAllowed, match=f"not a declared job; {HOW_TO_DECLARE}"):
        find("tests.testapp.tasks.undeclared")
    with pytest.raises(JobNotAllowed, match="not a declared job"):
        find("tests.testapp.tasks.NOT_CALLABLE")


def test_find_refuses_modules_outside_the_installed_apps_without_importing_them():
    assert "tabnanny" not in sys.modules
    with pytest.raises(
        JobNotAllowed, match=f"outside the installed apps. To run it, {HOW_TO_DECLARE}"
    ):
        find("tabnanny.check")
    assert "tabnanny" not in sys.modules
    # Declaring a function does not help when its module lies outside the installed apps.
    assert declared_options(declared_outside_the_apps) is not None
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        find(f"{__name__}.declared_outside_the_apps")


def test_installed_apps_are_matched_by_whole_package_names():
    assert in_installed_app("tests.testapp")
    assert in_installed_app("tests.testapp.tasks")
    assert not in_installed_app("tests.testapp_evil.tasks")
    assert not in_installed_app("tests")
    assert not in_installed_app("os")


@pytest.mark.parametrize("name", ["not a path", "tasks", ".tasks.record", "a..b", "a.b-c"])
def test_find_refuses_what_is_not_a_dotted_path(name):
    with pytest.raises(JobNotAllowed, match="not a dotted path to a function, such as"):
        find(name)


def test_a_declared_name_that_does_not_import_is_an_import_error():
    with pytest.raises(ImportError, match="has no attribute 'missing'"):
        find("tests.testapp.tasks.missing")
    with pytest.raises(ImportError):
        find("tests.testapp.no_such_module.fn")


@override_settings(ASYNC_QUEUE={"JOBS": ["tests.testapp.tasks.undeclared", "os.getpid", 7]})
def test_the_jobs_setting_declares_exact_names():
    assert listed_jobs() == {"tests.testapp.tasks.undeclared", "os.getpid"}
    assert find("tests.testapp.tasks.undeclared") is tasks.undeclared
    import os

    assert find("os.getpid") is os.getpid
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        find("os.getppid")  # its module's neighbour is not declared
    with pytest.raises(JobNotAllowed, match="not a declared job"):
        find("tests.testapp.tasks.NOT_CALLABLE")


@override_settings(ASYNC_QUEUE={"JOBS": ["tests.testapp.tasks.NOT_CALLABLE"]})
def test_a_listed_name_must_be_callable():
    with pytest.raises(JobNotAllowed, match=r"\(in ASYNC_QUEUE\['JOBS'\]\) is not callable"):
        find("tests.testapp.tasks.NOT_CALLABLE")


@pytest.mark.django_db(transaction=True)
@override_settings(ASYNC_QUEUE={"JOBS": ["tests.testapp.tasks.undeclared", "os.getpid"]})
def test_jobs_setting_declares_exact_names_only():
    schedule(tasks.undeclared)
    schedule("os.getpid")
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        schedule("os.getppid")
    with pytest.raises(JobNotAllowed, match="not a declared job"):
        schedule("tests.testapp.tasks.NOT_CALLABLE")


def test_resolve_returns_a_sync_function_as_it_is():
    assert resolve("tests.testapp.tasks.record") is tasks.record


@pytest.mark.django_db
def test_resolve_wraps_an_async_function_to_run_in_this_thread():
    runner = resolve("tests.testapp.tasks.async_write")
    assert inspect.iscoroutinefunction(tasks.async_write)
    assert not inspect.iscoroutinefunction(runner)
    assert runner("from-sync") == "from-sync"
    assert Counter.objects.filter(name="from-sync").exists()


@needs_django_tasks
def test_a_django_task_at_a_dotted_path_is_declared():
    from tests.testapp import django_tasks

    assert find("tests.testapp.django_tasks.add") is django_tasks.add
    assert resolve("tests.testapp.django_tasks.add")(2, 3) == 5
    assert declaration(django_tasks.send) == ("tests.testapp.django_tasks.send", None)
    assert declaration("tests.testapp.django_tasks.add") == ("tests.testapp.django_tasks.add", None)


# -- declaration: what a row stores, refused at schedule time -----------------------------


def test_declaration_of_a_function_or_its_name():
    expected = ("tests.testapp.tasks.mail_job", declared_options(tasks.mail_job))
    assert declaration(tasks.mail_job) == expected
    assert declaration("tests.testapp.tasks.mail_job") == expected
    assert dotted_name(tasks.record) == "tests.testapp.tasks.record"


def impostor() -> None:
    """Claims to be ``tests.testapp.tasks.record`` (see the test below)."""


def test_declaration_refuses_with_a_message_naming_the_fix():
    impostor.__module__, impostor.__qualname__ = "tests.testapp.tasks", "record"
    try:
        with pytest.raises(ScheduleError, match=r"does not import back to .*schedule the module"):
            declaration(impostor)
    finally:
        impostor.__module__, impostor.__qualname__ = __name__, "impostor"

    def local():
        pass

    main = type(local)(local.__code__, {}, "script_function")
    main.__module__, main.__qualname__ = "__main__", "script_function"
    cases = [
        (tasks.Helper().method, "bound method; schedule a module-level function and pass"),
        (lambda: None, "Lambdas cannot be scheduled; use a module-level function"),
        (local, "is defined inside a function; move it to module level"),
        (main, "defined in __main__, which a worker cannot import; move it to a module"),
        (42, "is not callable"),
        ("tests.testapp.tasks.missing", "Cannot schedule 'tests.testapp.tasks.missing': "),
    ]
    for function, message in cases:
        with pytest.raises(ScheduleError, match=message):
            declaration(function)


def test_declaration_refusals_of_undeclared_names_are_job_not_allowed():
    with pytest.raises(JobNotAllowed, match=HOW_TO_DECLARE):
        declaration(tasks.undeclared)
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        declaration(declared_outside_the_apps)
    with pytest.raises(JobNotAllowed, match="outside the installed apps"):
        declaration(print)
    assert issubclass(JobNotAllowed, ScheduleError)


@pytest.mark.django_db
def test_nothing_refused_was_written():
    with pytest.raises(JobNotAllowed):
        schedule(declared_outside_the_apps, on_commit=False)
    assert not Job.objects.exists()
