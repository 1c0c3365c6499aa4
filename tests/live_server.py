"""A real `uvicorn main:app` in a subprocess, and throwaway databases to point it at.

`TestClient` runs the app inside the test process, so it cannot show what several worker
processes, a restart or a SIGTERM do. These helpers start the very command the README and
the Dockerfile use, on a free port, and stop it (and its workers) whatever happens.
Every line the server logs carries the pid of the process that wrote it, so a test can
tell which worker answered a request.
"""

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
MIGRATE_COMMAND = ["alembic", "upgrade", "head"]  # docker-compose's `migrate` service runs exactly this
STARTED = "Application startup complete."
STOPPED = "Application shutdown complete."
# Variables the app reads: a developer's shell must not leak them into a test server.
APP_VARIABLES = {name.upper() for name in Settings.model_fields}
LOG_FORMAT = "%(process)d %(levelname)s %(name)s %(message)s"
ACCESS_LINE = re.compile(
    r'^(?P<pid>\d+) INFO uvicorn\.access \S+ - "(?P<method>\S+) (?P<target>\S+) \S+" (?P<status>\d+)'
)


@dataclass(frozen=True)
class AccessEntry:
    """One line of uvicorn's access log: which worker process answered what."""

    pid: int
    method: str
    target: str
    status: int


def uvicorn_command(host: str, workers: int) -> list[str]:
    """How the app is served; the Dockerfile's CMD is this, with host 0.0.0.0 and 2 workers."""
    options = ["--host", host, "--workers", str(workers), "--loop", "asyncio", "--timeout-graceful-shutdown", "5"]
    return ["uvicorn", "main:app", *options]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _inherited_environment() -> dict[str, str]:
    """This process's environment without the app's own variables (set by the caller instead)."""
    excluded = APP_VARIABLES | {"FORWARDED_ALLOW_IPS"}
    return {name: value for name, value in os.environ.items() if name.upper() not in excluded}


def dockerfile_env() -> dict[str, str]:
    """The variables the Dockerfile's `ENV` lines set, which its CMD runs with."""
    values: dict[str, str] = {}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for assignment in shlex.split(line[4:]):
                name, _, value = assignment.partition("=")
                values[name] = value
    return values


def _log_config() -> dict[str, object]:
    """uvicorn's loggers, each line prefixed with the pid of the worker that wrote it."""
    handler = {"class": "logging.StreamHandler", "formatter": "pid", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pid": {"format": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


class LiveServer:
    """A running `uvicorn main:app`; `stop()` signals it like a process manager would."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log_path: Path, workers: int, env: Mapping[str, str]
    ) -> None:
        self.process = process
        self.env = dict(env)
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.workers = workers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> list[AccessEntry]:
        entries = (ACCESS_LINE.match(line) for line in self.log().splitlines())
        return [
            AccessEntry(int(m["pid"]), m["method"], m["target"], int(m["status"])) for m in entries if m is not None
        ]

    def answered(
        self, method: str, target: str, count: int, status: int | None = None, timeout: float = 5.0
    ) -> list[AccessEntry]:
        """The access-log entries for `method target` (with `status`, if given), once `count` are written."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                entry
                for entry in self.access_log()
                if (entry.method, entry.target) == (method, target) and status in (None, entry.status)
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def client(self, **options: Any) -> httpx.Client:
        """An httpx client for this server; options (headers, timeout…) go to `httpx.Client`."""
        return httpx.Client(base_url=self.base_url, **{"timeout": 30, **options})

    @contextmanager
    def pinned_clients(self, per_worker: int, attempts: int = 400) -> Iterator[dict[int, list[httpx.Client]]]:
        """`per_worker` open keep-alive connections to each worker process, keyed by its pid.

        The workers share one listening socket and the kernel picks which of them accepts a new
        connection, so a test cannot choose a worker; it can open connections until each worker
        holds enough, telling them apart by a marked first request in the access log."""
        pinned: dict[int, list[httpx.Client]] = {}
        try:
            for _ in range(attempts):
                if len(pinned) == self.workers and all(len(held) >= per_worker for held in pinned.values()):
                    break
                client, marker = self.client(), f"/health?connection={uuid.uuid4().hex}"
                client.get(marker).raise_for_status()
                pid = self.answered("GET", marker, 1)[0].pid
                held = pinned.setdefault(pid, [])
                if len(held) < per_worker:
                    held.append(client)
                else:
                    client.close()
            else:
                raise RuntimeError(f"{attempts} connections did not reach {per_worker} per worker: {pinned}")
            yield pinned
        finally:
            for held in pinned.values():
                for client in held:
                    client.close()

    def wait_until_ready(self, timeout: float) -> None:
        """Until /health answers and every worker has finished its startup (migrations, seeding)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{self.log()}")
            if self.log().count(STARTED) >= self.workers:
                try:
                    if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"uvicorn did not become ready in {timeout} s:\n{self.log()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Signal the main process only, as `docker stop` or systemd does; it stops its workers."""
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait; whatever is left of the process group after `timeout` is killed."""
        try:
            self.signal(signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):  # its own group: only this server's processes
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def live_server(
    env: Mapping[str, str],
    log_dir: Path,
    workers: int = 1,
    startup_timeout: float = 60.0,
    command: Callable[[int], list[str]] | None = None,
) -> Iterator[LiveServer]:
    """Start `uvicorn main:app` as the Dockerfile does, with `env` as its configuration, or the
    `command` given for a port; stopped (or killed) on exit.

    The Dockerfile's command runs from `log_dir`, so a `.env` in the repository cannot change its settings."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    config_path = log_dir / f"log-config-{port}.json"
    config_path.write_text(json.dumps(_log_config()))
    log_path = log_dir / f"uvicorn-{port}.log"
    base_env = _inherited_environment()
    if command is None:
        base_env |= dockerfile_env()
        args = [sys.executable, "-m", *uvicorn_command("127.0.0.1", workers), "--port", str(port)]
        args += ["--app-dir", str(ROOT), "--log-config", str(config_path)]
    else:
        args = command(port)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            args,
            cwd=log_dir,
            env={**base_env, "PYTHONUNBUFFERED": "1", **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, so stop() can reach its workers
        )
    server = LiveServer(process, port, log_path, workers, env)
    try:
        server.wait_until_ready(startup_timeout)
        yield server
    finally:
        server.stop()


def postgres_base_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL: set TEST_POSTGRES_URL (CI does) to run the live-server tests against PostgreSQL")
    return url


def migrate(database_url: str) -> None:
    """Prepare a PostgreSQL database exactly as the deployment does: `alembic upgrade head`."""
    done = subprocess.run(
        [sys.executable, "-m", *MIGRATE_COMMAND],
        cwd=ROOT,
        env={**_inherited_environment(), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`alembic upgrade head` failed ({done.returncode}):\n{done.stderr}")


@contextmanager
def throwaway_database(kind: str, directory: Path) -> Iterator[str]:
    """The DATABASE_URL of an empty database of `kind`: a new SQLite file (the app migrates it
    at startup), or a new PostgreSQL database migrated by `alembic upgrade head` and dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'tasks-{uuid.uuid4().hex[:8]}.db'}"
        return
    base_url = postgres_base_url()
    name = f"tasks_live_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
        try:
            migrate(url)
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def register_and_login(client: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    """A new user's auth headers (one Argon2 hash and one verify: about 0.2 s)."""
    created = client.post("/auth/register", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = client.post("/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def app_env(database_url: str, **overrides: str) -> dict[str, str]:
    """A test server's configuration: quiet (no demo data), with the tests' signing key."""
    return {"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, "DEMO_DATA": "false", **overrides}


def unique_email() -> str:
    return f"live-{uuid.uuid4().hex[:12]}@example.com"


def simultaneously(count: int, action: Callable[[int], T]) -> list[T]:
    """`action(0)` … `action(count - 1)`, each in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait()
        return action(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def pids(entries: list[AccessEntry]) -> set[int]:
    """The worker processes behind these answers."""
    return {entry.pid for entry in entries}


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Another program's write transaction on the file, held until the block ends. In WAL mode
    `BEGIN EXCLUSIVE` shuts out every other writer, while readers go on reading."""
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        locker.close()  # rolls the transaction back


def sqlite_file(database_url: str) -> Path:
    """The file a `sqlite:///…` DATABASE_URL names."""
    database = make_url(database_url).database
    assert database, database_url
    return Path(database)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """How long `action()` took, in seconds, and what it returned."""
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result
