"""Storage faults: 503 problem with Retry-After (never 500), /health unaffected, recovery without a restart.

Only the SQL backends can fail: the in-memory store has no connection, lock or timeout, so it
has no failure mode to test. SQLite's outage is an exclusive lock held by another connection;
PostgreSQL's is a TCP relay in front of the server that drops every connection while it is cut.
Stores here are built with a 0.5 s timeout, so every refused request answers quickly (and a
busy machine does not refuse the requests that set a test up).
"""

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, text

from auth import create_access_token
from database import create_db_engine
from main import create_app
from models import User
from settings import Settings
from sql_store import SqlStore
from storage import Storage, UserCredentials, get_db, utc_now
from tests.conftest import PASSWORD, TEST_SECRET, Headers

TIMEOUT = 0.5
EMAIL = "survivor@example.com"


def app_on(store: Storage) -> FastAPI:
    app = create_app(Settings(database_url="memory", secret_key=TEST_SECRET, demo_data=False))
    app.dependency_overrides[get_db] = lambda: store
    return app


@contextmanager
def sqlite_locked(path: str, engines: list[Engine]) -> Iterator[None]:
    """Another process's exclusive lock: in WAL mode only `locking_mode=EXCLUSIVE` plus a write blocks readers."""
    for engine in engines:
        engine.dispose()  # exclusive mode can only be entered while no other connection is open
    locker = sqlite3.connect(path, isolation_level=None, timeout=1)
    try:
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        locker.execute("PRAGMA user_version = 0")  # a write: the exclusive lock is now held until close
        locker.execute("COMMIT")
        yield
    finally:
        locker.close()


class Relay:
    """A TCP relay to PostgreSQL that can be cut, like a network outage or a database restart."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.upstream, timeout=1)
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @contextmanager
    def cut(self) -> Iterator[None]:
        self.up = False
        self._drop_all()
        try:
            yield
        finally:
            self.up = True

    def close(self) -> None:
        self.up = False
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._drop_all()


@dataclass
class Faulty:
    """A store with a short timeout on the test's database, and a way to take that database away."""

    store: SqlStore
    outage: Callable[[], AbstractContextManager[None]]


@pytest.fixture
def faulty(storage: Storage) -> Iterator[Faulty]:
    assert isinstance(storage, SqlStore)
    url = storage.engine.url
    if storage.kind == "sqlite":
        engine = create_db_engine(url.render_as_string(hide_password=False), TIMEOUT)
        assert url.database is not None
        path = url.database
        yield Faulty(SqlStore(engine), lambda: sqlite_locked(path, [engine, storage.engine]))
        engine.dispose()
    else:
        relay = Relay(url.host or "127.0.0.1", url.port or 5432)
        relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        engine = create_db_engine(relayed, TIMEOUT)
        yield Faulty(SqlStore(engine), relay.cut)
        engine.dispose()
        relay.close()


def assert_unavailable(response: Response) -> None:
    assert response.status_code == 503, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert response.json()["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"].isdigit() and int(response.headers["Retry-After"]) >= 1


# Every kind of data route: reads and writes, anonymous and authenticated.
DATA_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/tasks", {}),
    ("GET", "/tasks/{id}", {}),
    ("POST", "/tasks", {"json": {"title": "Never stored"}}),
    ("PATCH", "/tasks/{id}", {"json": {"title": "Never stored"}}),
    ("PUT", "/tasks/{id}", {"json": {"title": "Never stored"}}),
    ("DELETE", "/tasks/{id}", {}),
    ("GET", "/users/me", {}),
    ("POST", "/auth/token", {"data": {"username": EMAIL, "password": PASSWORD}}),
    ("POST", "/auth/register", {"json": {"email": "latecomer@example.com", "password": PASSWORD}}),
]


def user_with_a_task(client: TestClient, title: str) -> tuple[Headers, dict[str, Any]]:
    """A registered, logged-in user and one task of theirs, made before any fault."""
    assert client.post("/auth/register", json={"email": EMAIL, "password": PASSWORD}).status_code == 201
    token = client.post("/auth/token", data={"username": EMAIL, "password": PASSWORD}).json()["access_token"]
    user: Headers = {"Authorization": f"Bearer {token}"}
    task: dict[str, Any] = client.post("/tasks", json={"title": title}, headers=user).json()
    return user, task


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"], indirect=True)
def test_an_outage_gives_503_and_the_service_recovers_by_itself(faulty: Faulty) -> None:
    with TestClient(app_on(faulty.store)) as client:
        user, task = user_with_a_task(client, "Committed before the outage")

        with faulty.outage():
            assert client.get("/health").status_code == 200
            assert_unavailable(client.get("/ready"))
            for method, url, options in DATA_ROUTES:
                assert_unavailable(client.request(method, url.format(id=task["id"]), headers=user, **options))
            assert client.get("/health").status_code == 200

        assert client.get("/ready").status_code == 200
        assert client.get(f"/tasks/{task['id']}", headers=user).json() == task, "committed data survives"
        assert client.get("/tasks", headers=user).json()["total"] == 1, "nothing refused was stored"
        assert client.post("/auth/token", data={"username": EMAIL, "password": PASSWORD}).status_code == 200
        assert client.post("/tasks", json={"title": "After"}, headers=user).status_code == 201
        assert client.patch(f"/tasks/{task['id']}", json={"priority": 5}, headers=user).status_code == 200


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)
def test_a_held_sqlite_write_lock_refuses_writes_but_not_reads(faulty: Faulty) -> None:
    """Another writer past the busy timeout: writes and /ready get 503, reads go on (WAL)."""
    assert faulty.store.engine.url.database is not None
    with TestClient(app_on(faulty.store)) as client:
        user, task = user_with_a_task(client, "Before")
        writer = sqlite3.connect(faulty.store.engine.url.database, isolation_level=None, timeout=1)
        try:
            writer.execute("BEGIN IMMEDIATE")
            assert_unavailable(client.post("/tasks", json={"title": "Never stored"}, headers=user))
            assert_unavailable(client.patch(f"/tasks/{task['id']}", json={"priority": 2}, headers=user))
            assert client.get(f"/tasks/{task['id']}", headers=user).json() == task
            assert_unavailable(client.get("/ready"))
            assert client.get("/health").status_code == 200
        finally:
            writer.close()
        assert client.get("/ready").status_code == 200
        assert client.post("/tasks", json={"title": "After"}, headers=user).status_code == 201
        assert client.get("/tasks", headers=user).json()["total"] == 2


def test_an_unreachable_postgresql_gives_503_on_data_routes_and_ready() -> None:
    """Nothing listens on port 1: every connection attempt is refused at once."""
    engine = create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/test", TIMEOUT)
    app = app_on(SqlStore(engine))
    with TestClient(app) as client:
        account = UserCredentials(User(id=1, email="a@example.com", is_admin=False, created_at=utc_now()), "-", "key")
        token = create_access_token(account, app.state.settings).access_token
        assert client.get("/health").status_code == 200
        assert_unavailable(client.get("/ready"))
        for method, url, options in DATA_ROUTES:
            assert_unavailable(
                client.request(method, url.format(id=1), headers={"Authorization": f"Bearer {token}"}, **options)
            )
    engine.dispose()


@pytest.mark.parametrize("storage", ["postgresql"], indirect=True)
def test_a_postgresql_row_lock_held_past_the_timeout_refuses_the_write_but_not_reads(faulty: Faulty) -> None:
    """Another program holds a task's row lock: a PATCH waits only until its deadline, a GET not at all."""
    with TestClient(app_on(faulty.store)) as client:
        user, task = user_with_a_task(client, "Locked")
        with faulty.store.engine.connect() as holder:
            holder.execute(text("SET idle_in_transaction_session_timeout = '5s'"))  # never for ever
            holder.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
            started = time.monotonic()
            assert_unavailable(client.patch(f"/tasks/{task['id']}", json={"priority": 5}, headers=user))
            assert time.monotonic() - started < TIMEOUT + 1
            assert client.get(f"/tasks/{task['id']}", headers=user).json() == task
            holder.rollback()
        assert client.patch(f"/tasks/{task['id']}", json={"priority": 5}, headers=user).status_code == 200
