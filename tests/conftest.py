import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


# The browser tests drive Debian's Chromium (a tool's own browser download does not work
# everywhere), headless and with nothing that reaches the network by itself.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def child_env() -> dict[str, str]:
    """The environment of a subprocess that must use this run's test database."""
    env = dict(os.environ)
    env["ASYNC_QUEUE_TEST_DB_NAME"] = connection.settings_dict["NAME"]
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    if connection.vendor == "sqlite":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


@pytest.fixture
def manage(transactional_db) -> Callable[..., subprocess.CompletedProcess]:
    """Run a management command in a real subprocess against the test database."""

    def run(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=child_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


class WorkerProcess:
    """A ``flush_queue`` subprocess whose output goes to files (no pipe to fill up)."""

    def __init__(
        self, args: tuple[str, ...], directory: Path, env: dict[str, str] | None = None
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.stdout_path = directory / "stdout"
        self.stderr_path = directory / "stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "flush_queue", *args],
                env={**child_env(), **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=err,
                # Its own process group, so that teardown also kills a pool's workers.
                start_new_session=True,
            )

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill(self) -> None:
        """SIGKILL the process and anything it started (a pool's workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_worker(transactional_db, tmp_path) -> Callable[..., WorkerProcess]:
    """Start ``flush_queue`` subprocesses; any still running are killed at teardown."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(args, tmp_path / f"worker{len(started)}", env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


# -- users and signed-in clients ------------------------------------------------------------
#
# The one place tests make users and sign them in. No user gets a usable password unless a
# test posts a real login form: hashing one costs a third of a second, and
# ``force_login`` needs none. The fixtures are not called ``admin_user``/``admin_client``:
# those are pytest-django's, and a project fixture of the same name would shadow them.


def make_user(
    name: str = "user",
    *perms: str,
    staff: bool = False,
    superuser: bool = False,
    password: str | None = None,
) -> User:
    """A user with these permissions (``codename`` or ``app_label.codename``).

    A superuser is staff too, as ``createsuperuser`` makes one.
    """
    user = User.objects.create_user(
        name, password=password, is_staff=staff or superuser, is_superuser=superuser
    )
    for perm in perms:
        app_label, _, codename = perm.rpartition(".")
        found = Permission.objects.filter(codename=codename)
        if app_label:
            found = found.filter(content_type__app_label=app_label)
        user.user_permissions.add(found.get())
    return user


def login(client: Client, user: User) -> Client:
    """Sign ``user`` in on ``client``; returns the client."""
    client.force_login(user)
    return client


@pytest.fixture
def superuser(db) -> User:
    return make_user("root", superuser=True)


@pytest.fixture
def staff_user(db) -> User:
    """Staff without any permission or superuser status."""
    return make_user("staff", staff=True)


@pytest.fixture
def plain_user(db) -> User:
    return make_user("user")


@pytest.fixture
def superuser_client(client, superuser) -> Client:
    return login(client, superuser)


@pytest.fixture
def staff_client(client, staff_user) -> Client:
    return login(client, staff_user)


@pytest.fixture
def user_client(client, plain_user) -> Client:
    return login(client, plain_user)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ASYNC_QUEUE_TEST_DB", "sqlite") == "postgres":
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only behaviour (run ./runtests --postgres)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
