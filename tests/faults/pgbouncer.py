"""A real PgBouncer between test workers and PostgreSQL, started by the test itself.

It listens on a free loopback port with a config file of its own in a temporary
directory, and forwards every database name to the PostgreSQL of the test run.
Never a system service: the process is the test's, stopped at teardown. PgBouncer
refuses to run as root, so as root it runs as the ``postgres`` user (``-u``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

BINARY = shutil.which("pgbouncer") or next(
    (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(path)), None
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgBouncer:
    """One PgBouncer process; ``port`` is where workers connect instead of PostgreSQL."""

    def __init__(self, pool_mode: str = "transaction", pool_size: int = 20) -> None:
        assert BINARY is not None
        settings = connection.settings_dict
        self.directory = Path(tempfile.mkdtemp(prefix="aq-pgbouncer-"))
        self.port = free_port()
        user = settings["USER"] or "postgres"
        (self.directory / "users.txt").write_text(f'"{user}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.directory / 'users.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
        )
        command = [BINARY]
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            for path in self.directory.iterdir():
                os.chown(path, account.pw_uid, account.pw_gid)
            command += ["-u", "postgres"]
        command.append(str(self.directory / "pgbouncer.ini"))
        self.output = open(self.directory / "output", "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"PgBouncer exited {self.process.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError(f"PgBouncer did not listen on port {self.port}: {self.log()}")

    def log(self) -> str:
        texts = []
        for name in ("output", "pgbouncer.log"):
            with contextlib.suppress(OSError):
                texts.append((self.directory / name).read_text())
        return "\n".join(texts)

    @property
    def env(self) -> dict[str, str]:
        """Environment of a worker subprocess that connects through this PgBouncer."""
        return {"ASYNC_QUEUE_PG_PORT": str(self.port)}

    @contextlib.contextmanager
    def routed(self) -> Iterator[None]:
        """This process's own database connection goes through PgBouncer meanwhile."""
        settings = connection.settings_dict
        saved = settings["PORT"]
        connection.close()
        settings["PORT"] = str(self.port)
        try:
            yield
        finally:
            connection.close()
            settings["PORT"] = saved

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    """A PgBouncer in transaction pooling mode, for this test only."""
    if BINARY is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    bouncer = PgBouncer()
    yield bouncer
    bouncer.stop()
