"""The django.tasks contract: peers' test suites ported to the queue's backend.

``test_django_*`` come from Django's ``tests/tasks`` and ``test_tasks_db`` from
django-tasks-db's ``tests/tests.py`` (both BSD-3-Clause; each file keeps its
notice and names its source). They run unchanged but for names: the backend's
path, how the worker runs a task (in this process, through ``flush_queue``), and
their fixtures (tables instead of a backend's in-memory list). A test that fails
for a deliberate difference of this backend is marked ``xfail(strict=True)`` with
its reason, and listed in the README; tests of a peer's own internals (its
models, admin, commands' options) are not ported, and each file lists them.

``backend_tasks`` holds the tasks of the backend's own tests
(tests/async_queue/test_backends.py). This package is an installed app
(tests/settings.py, Django 6.0+): a worker runs only tasks that live in one.
"""
