"""Turning functions into dotted names and back, safely.

Running a dotted path read from a database row is code execution, so a name is
checked against ``ALLOWED_MODULES`` *before* anything is imported: a forged row
naming ``os.system`` is refused without ``os`` (or anything else) being
imported on its behalf.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from asgiref.sync import async_to_sync
from django.apps import apps

from .conf import queue_settings
from .exceptions import JobNotAllowed, ScheduleError

JOB_ATTRIBUTE = "async_queue_job"


@dataclass(frozen=True)
class JobOptions:
    """What ``@job`` declared: the function's dotted name and its scheduling defaults."""

    name: str
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None


F = TypeVar("F", bound=Callable[..., Any])


@overload
def job(function: F, /) -> F: ...


@overload
def job(
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> Callable[[F], F]: ...


def job(
    function: Callable[..., Any] | None = None,
    /,
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> Any:
    """Declare a module-level function a job; only declared functions ever run.

    Bare (``@job``) or with defaults for ``schedule()`` (``@job(queue="mail",
    priority=5, max_attempts=3, timeout=60)``). Returns the function itself,
    marked, so it stays directly callable.
    """

    def declare(target: F) -> F:
        if not callable(target) or not hasattr(target, "__qualname__"):
            raise TypeError(f"@job decorates a module-level function, not {target!r}.")
        qualname = target.__qualname__
        if "<" in qualname or "." in qualname:
            raise TypeError(
                f"@job: {qualname!r} is not a module-level function; a worker could not "
                "import it again."
            )
        options = JobOptions(
            f"{target.__module__}.{qualname}", queue, priority, max_attempts, timeout
        )
        setattr(target, JOB_ATTRIBUTE, options)
        return target

    return declare if function is None else declare(function)


def declared_options(target: Any) -> JobOptions | None:
    """The ``@job`` declaration of ``target``, or None."""
    options = getattr(target, JOB_ATTRIBUTE, None)
    return options if isinstance(options, JobOptions) else None


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def allowed_prefixes() -> list[str]:
    configured = queue_settings.ALLOWED_MODULES
    if configured is not None:
        return list(configured)
    return [config.name for config in apps.get_app_configs()]


def check_allowed(name: str) -> None:
    """Raise ``JobNotAllowed`` unless ``name`` is a dotted path under an allowed prefix."""
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise JobNotAllowed(
            f"{name!r} is not a dotted path to a function, such as 'myapp.tasks.send_mail'."
        )
    for prefix in allowed_prefixes():
        if name.startswith(prefix + "."):
            return
    raise JobNotAllowed(
        f"{name!r} is not in an allowed module. Jobs may name functions in the modules of "
        "INSTALLED_APPS, or under the prefixes in ASYNC_QUEUE['ALLOWED_MODULES']."
    )


def resolve(name: str) -> Callable[..., Any]:
    """Import the callable ``name`` names, after checking it is allowed; return a sync callable.

    A Django ``@task`` (whose dotted path names its ``Task`` object) and an
    ``async def`` function are returned wrapped, so that the worker calls them
    like any function, in its thread and so inside the job's transaction.
    Raises ``JobNotAllowed`` (nothing imported), ``ImportError`` or ``TypeError``.
    """
    check_allowed(name)
    module_name, _, attribute = name.rpartition(".")
    module = importlib.import_module(module_name)
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"Module {module_name!r} has no attribute {attribute!r}.") from None
    if _is_django_task(target):
        return _task_runner(target)
    if not callable(target):
        raise TypeError(f"{name!r} is a {type(target).__name__}, not a callable.")
    if inspect.iscoroutinefunction(target):
        # ORM calls in the coroutine (``aget``, ``acreate``, sync_to_async) run in
        # this thread, on this connection: inside the job's transaction.
        return async_to_sync(target)
    return target


def _is_django_task(target: Any) -> bool:
    return type(target).__module__ == "django.tasks.base" and type(target).__name__ == "Task"


def _task_runner(task: Any) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        if task.takes_context:
            from .backends import task_context
            from .progress import current_job

            return task.call(task_context(current_job()), *args, **kwargs)
        return task.call(*args, **kwargs)

    return run


def dotted_name(function: Callable[..., Any] | str) -> str:
    """The dotted name a job row stores for ``function``; ``ScheduleError`` if it has none.

    Only module-level callables have a name a worker can import again: lambdas,
    nested functions, bound methods and callables defined in ``__main__`` are
    refused here, at schedule time, instead of failing in a worker later.
    """
    if _is_django_task(function):
        function = function.module_path
    if isinstance(function, str):
        name = function
        check_allowed(name)
        try:
            resolve(name)
        except (ImportError, TypeError) as exc:
            raise ScheduleError(f"Cannot schedule {name!r}: {exc}") from exc
        return name

    if inspect.ismethod(function):
        raise ScheduleError(
            f"{function!r} is a bound method; schedule a module-level function and pass "
            "the object's primary key as an argument."
        )
    if not callable(function):
        raise ScheduleError(f"{function!r} is not callable.")
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname:
        raise ScheduleError(f"{function!r} has no importable dotted path.")
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise ScheduleError("Lambdas cannot be scheduled; use a module-level function.")
    if "<locals>" in qualname:
        raise ScheduleError(f"{qualname!r} is defined inside a function; move it to module level.")
    if module == "__main__":
        raise ScheduleError(
            f"{qualname!r} is defined in __main__, which a worker cannot import; "
            "move it to a module of your project."
        )
    name = f"{module}.{qualname}"
    check_allowed(name)
    try:
        resolve(name)
    except (ImportError, TypeError) as exc:
        raise ScheduleError(f"Cannot schedule {name!r}: {exc}") from exc
    module_object = importlib.import_module(module)
    if getattr(module_object, qualname, None) is not function:
        raise ScheduleError(
            f"{name!r} does not import back to {function!r}; schedule the module-level "
            "function itself (a class attribute or a re-bound name is not supported)."
        )
    return name
