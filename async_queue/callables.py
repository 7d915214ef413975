"""Declared jobs: turning functions into dotted names and back, safely.

Running a dotted path read from a database row is code execution, and a prefix
allow-list cannot make it safe: every allowed module is a library of gadgets
(``django.contrib.auth.password_validation.get_password_validators`` imports and
calls any dotted path it is given). So only **declared** functions run:

- a function decorated with ``@job`` (the decorator marks it; a row cannot);
- a ``django.tasks`` ``Task`` object;
- an exact dotted name listed in ``ASYNC_QUEUE["JOBS"]`` (for code you do not own).

A row's module is imported only if it lies inside an installed app (or is the
module of a name in ``JOBS``), and the object found there is called only if it
is declared. Anything else is refused with ``JobNotAllowed`` before it is called
(and, outside the installed apps, before anything is imported).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from asgiref.sync import async_to_sync
from django.apps import apps

from .conf import queue_settings
from .contrib.tasks.runner import is_task, task_runner
from .exceptions import JobNotAllowed, ScheduleError
from .limits import KeySpec, Limits, Rate
from .policy import BACKOFF_ATTRIBUTE, BackoffFunction, ExceptionTypes, Rules
from .retries import Exponential

JOB_ATTRIBUTE = "async_queue_job"


@dataclass(frozen=True)
class JobOptions:
    """What ``@job`` declared: the function's dotted name and its scheduling defaults."""

    name: str
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    rules: Rules = field(default_factory=Rules)
    limits: Limits = field(default_factory=Limits)


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
    retry_on: ExceptionTypes = None,
    discard_on: ExceptionTypes = None,
    backoff: Exponential | BackoffFunction | None = None,
    concurrency: int | None = None,
    concurrency_key: KeySpec = None,
    rate: str | Rate | None = None,
    rate_key: KeySpec = None,
) -> Callable[[F], F]: ...


def job(
    function: Callable[..., Any] | None = None,
    /,
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    retry_on: ExceptionTypes = None,
    discard_on: ExceptionTypes = None,
    backoff: Exponential | BackoffFunction | None = None,
    concurrency: int | None = None,
    concurrency_key: KeySpec = None,
    rate: str | Rate | None = None,
    rate_key: KeySpec = None,
) -> Any:
    """Declare a module-level function a job; only declared functions ever run.

    Bare (``@job``) or with defaults for ``schedule()`` (``@job(queue="mail",
    priority=5, max_attempts=3, timeout=60)``) and a failure policy: ``retry_on``
    (only these exceptions retry; default any), ``discard_on`` (these fail at
    once) and ``backoff`` (an ``Exponential(...)`` or a function ``(attempt,
    exception) -> seconds``); see ``async_queue.policy``. ``concurrency`` (at most
    N running at once) and ``rate`` (``"100/m"``), each per key (a template of the
    arguments such as ``"tenant:{tenant_id}"``, or a function of them; default: the
    job's name); see ``async_queue.limits``. Returns the function itself, marked,
    so it stays directly callable.
    """
    if isinstance(backoff, str):
        raise TypeError("@job(backoff=...) takes the function itself, not its name.")
    rules = Rules.given(retry_on, discard_on, backoff)
    limits = Limits.given(concurrency, concurrency_key, rate, rate_key)
    if callable(backoff) and not isinstance(backoff, Exponential):
        # Rows may then name it too (schedule(backoff=...)): it is declared code.
        setattr(backoff, BACKOFF_ATTRIBUTE, True)

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
            f"{target.__module__}.{qualname}",
            queue,
            priority,
            max_attempts,
            timeout,
            rules,
            limits,
        )
        setattr(target, JOB_ATTRIBUTE, options)
        return target

    return declare if function is None else declare(function)


def declared_options(target: Any) -> JobOptions | None:
    """The ``@job`` declaration of ``target``, or None."""
    # Static lookup: an object whose __getattr__ answers anything is not declared.
    options = inspect.getattr_static(target, JOB_ATTRIBUTE, None)
    return options if isinstance(options, JobOptions) else None


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
HOW_TO_DECLARE = "decorate it with @async_queue.job or list it in ASYNC_QUEUE['JOBS']"


def listed_jobs() -> frozenset[str]:
    """The exact dotted names ``ASYNC_QUEUE["JOBS"]`` declares."""
    return frozenset(name for name in queue_settings.JOBS if isinstance(name, str))


def in_installed_app(module: str) -> bool:
    """Whether ``module`` is an installed app's package or lies inside one."""
    return any(
        module == config.name or module.startswith(config.name + ".")
        for config in apps.get_app_configs()
    )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise JobNotAllowed(
            f"{name!r} is not a dotted path to a function, such as 'myapp.tasks.send_mail'."
        )


def find(name: str) -> Any:
    """The declared object ``name`` names (a function or a ``Task``); ``JobNotAllowed`` if none.

    Nothing outside the installed apps (and the names in ``JOBS``) is imported, and
    nothing is called. Raises ``ImportError`` if a declared name cannot be imported.
    """
    _check_name(name)
    listed = name in listed_jobs()
    module_name, _, attribute = name.rpartition(".")
    if not listed and not in_installed_app(module_name):
        raise JobNotAllowed(
            f"{name!r} is not a declared job: it lies outside the installed apps. To run it, "
            f"{HOW_TO_DECLARE}."
        )
    module = importlib.import_module(module_name)
    try:
        target = inspect.getattr_static(module, attribute)
    except AttributeError:
        raise ImportError(f"Module {module_name!r} has no attribute {attribute!r}.") from None
    if listed:
        if not callable(target):
            raise JobNotAllowed(f"{name!r} (in ASYNC_QUEUE['JOBS']) is not callable.")
        return target
    if is_task(target) or declared_options(target) is not None:
        return target
    raise JobNotAllowed(f"{name!r} is not a declared job; {HOW_TO_DECLARE}.")


def resolve(name: str) -> Callable[..., Any]:
    """The declared callable ``name`` names, as a sync callable (see ``find``).

    A Django ``@task`` (whose dotted path names its ``Task`` object) and an
    ``async def`` function are returned wrapped, so that the worker calls them
    like any function, in its thread and so inside the job's transaction.
    """
    target = find(name)
    if is_task(target):
        return task_runner(target)
    if inspect.iscoroutinefunction(target):
        # ORM calls in the coroutine (``aget``, ``acreate``, sync_to_async) run in
        # this thread, on this connection: inside the job's transaction.
        return async_to_sync(target)
    return target


def declaration(function: Callable[..., Any] | str) -> tuple[str, JobOptions | None]:
    """The dotted name a job row stores for ``function``, and its ``@job`` defaults.

    ``function`` is a declared function, a ``Task`` or a dotted name of either (or a
    name in ``JOBS``); anything else raises ``ScheduleError`` here, at schedule time,
    naming the fix, instead of failing in a worker later.
    """
    if is_task(function):
        function = function.module_path
    if isinstance(function, str):
        name = function
        try:
            target = find(name)
        except ImportError as exc:
            raise ScheduleError(f"Cannot schedule {name!r}: {exc}") from exc
        return name, declared_options(target)

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
    try:
        target = find(name)
    except ImportError as exc:
        raise ScheduleError(f"Cannot schedule {name!r}: {exc}") from exc
    if target is not function:
        raise ScheduleError(
            f"{name!r} does not import back to {function!r}; schedule the module-level "
            "function itself (a class attribute or a re-bound name is not supported)."
        )
    return name, declared_options(target)


def dotted_name(function: Callable[..., Any] | str) -> str:
    """The dotted name a job row stores for ``function`` (see ``declaration``)."""
    return declaration(function)[0]


def declared_rules(name: str) -> Rules:
    """The failure policy declared for the job ``name`` (none, if it cannot be found)."""
    try:
        target = find(name)
    except (ImportError, JobNotAllowed):
        return Rules()
    if is_task(target):
        options = declared_options(target.func)
        rules = options.rules if options is not None else Rules()
        # A Django version whose @task takes a backoff function: honoured.
        if rules.backoff is None and callable(task_backoff := getattr(target, "backoff", None)):
            rules = Rules(rules.retry_on, rules.discard_on, task_backoff)
        return rules
    options = declared_options(target)
    return options.rules if options is not None else Rules()


def job_rules(name: str, stored: Any) -> Rules:
    """The policy for a job row: its stored overrides over its declaration.

    A stored backoff name is resolved only to a declared backoff function (and
    only inside the installed apps); otherwise it stays a name, and the default
    backoff is used (``policy.delay`` says so).
    """
    rules = Rules.from_data(stored).over(declared_rules(name))
    if isinstance(rules.backoff, str):
        function = _declared_backoff(rules.backoff)
        if function is not None:
            rules = Rules(rules.retry_on, rules.discard_on, function)
    return rules


def _declared_backoff(name: str) -> BackoffFunction | None:
    if not _DOTTED.match(name):
        return None
    module_name, _, attribute = name.rpartition(".")
    if not in_installed_app(module_name):
        return None
    try:
        function = inspect.getattr_static(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None
    if callable(function) and inspect.getattr_static(function, BACKOFF_ATTRIBUTE, False) is True:
        return function
    return None


def backoff_reference(backoff: Any) -> Exponential | str | None:
    """What a row stores for ``schedule(backoff=...)``: an ``Exponential``, or the dotted
    name of a declared backoff function; ``ScheduleError`` for anything else."""
    if backoff is None or isinstance(backoff, Exponential):
        return backoff
    if not callable(backoff):
        raise ScheduleError(
            f"backoff must be an async_queue.Exponential(...) or a declared backoff function; "
            f"got {backoff!r}."
        )
    name = f"{getattr(backoff, '__module__', '')}.{getattr(backoff, '__qualname__', '')}"
    if "<" in name or _declared_backoff(name) is not backoff:
        raise ScheduleError(
            f"backoff={backoff!r} is not a declared backoff function: a job row names it, so it "
            "must be a module-level function of an installed app decorated with "
            "@async_queue.backoff (or given to some @job(backoff=...))."
        )
    return name
