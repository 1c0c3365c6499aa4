"""What a client was told is kept: data survives a restart, and a SIGTERM under write load
loses no write the server acknowledged with 201.

uvicorn, on SIGTERM, stops accepting connections, lets requests in flight finish (each
commits before it answers), then runs the app's shutdown; so every 201 a client received
names a row that is in the database afterwards, whatever was cut off mid-way.
"""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

import db_models
from tests.conftest import PASSWORD
from tests.live_server import STOPPED, LiveServer, app_env, live_server, register_and_login, throwaway_database

pytestmark = pytest.mark.slow

CREATORS = 16
ACKNOWLEDGED_BEFORE_SIGTERM = 150


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def stored_task_ids(database_url: str) -> set[int]:
    """Read straight from the database, not through a server that might still be caching."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(connection.scalars(select(db_models.Task.id)))
    finally:
        engine.dispose()


def test_data_survives_a_restart(database_url: str, tmp_path: Path) -> None:
    body = {"title": "Survives", "description": "kept", "priority": 4, "due_date": "2030-01-02", "tags": ["a", "b"]}
    with live_server(app_env(database_url), tmp_path) as first, first.client() as client:
        owner = register_and_login(client, "keeper@example.com")
        created = client.post("/tasks", json=body, headers={**owner, "Idempotency-Key": "k1"}).json()
        doomed = client.post("/tasks", json={"title": "Deleted"}, headers=owner).json()
        patched = client.patch(f"/tasks/{created['id']}", json={"status": "completed"}, headers=owner)
        assert client.delete(f"/tasks/{doomed['id']}", headers=owner).status_code == 204
        before = client.get("/tasks", headers=owner).json()

    with live_server(app_env(database_url), tmp_path) as second, second.client() as client:
        assert client.get("/users/me", headers=owner).json()["email"] == "keeper@example.com"
        login = client.post("/auth/token", data={"username": "keeper@example.com", "password": PASSWORD})
        assert login.status_code == 200  # the password hash was kept
        assert client.get("/tasks", headers=owner).json() == before
        assert [task["status"] for task in before["items"]] == ["completed"]
        assert client.get(f"/tasks/{created['id']}", headers=owner).headers["ETag"] == patched.headers["ETag"]
        assert client.get(f"/tasks/{doomed['id']}", headers=owner).status_code == 404
        retried = client.post("/tasks", json=body, headers={**owner, "Idempotency-Key": "k1"})
        assert (retried.status_code, retried.json()["id"]) == (201, created["id"])  # keys survive too
        assert client.get("/tasks", headers=owner).json()["total"] == 1


@dataclass
class Creator:
    """One client's view of the load: the ids it was given a 201 for, and what else happened."""

    acknowledged: list[int] = field(default_factory=list)
    other_statuses: list[int] = field(default_factory=list)
    unanswered: int = 0  # the connection failed: the client cannot know whether the write happened


def keep_creating(server: LiveServer, owner: dict[str, str], creator: Creator, give_up: threading.Event) -> None:
    """Create tasks back to back until the server process is gone."""
    with server.client(headers=owner, timeout=10) as client:
        while server.process.poll() is None and not give_up.is_set():
            try:
                response = client.post("/tasks", json={"title": "Acknowledged?"})
            except httpx.TransportError:
                creator.unanswered += 1
                time.sleep(0.01)
                continue
            if response.status_code == 201:
                creator.acknowledged.append(response.json()["id"])
            else:
                creator.other_statuses.append(response.status_code)


def wait_for_acknowledged_writes(
    creators: list[Creator], running: list[Future[None]], give_up: threading.Event
) -> None:
    """Until the clients have enough 201s to make a SIGTERM meaningful (or one of them stopped)."""
    deadline = time.monotonic() + 20
    while sum(len(creator.acknowledged) for creator in creators) < ACKNOWLEDGED_BEFORE_SIGTERM:
        if time.monotonic() > deadline or any(future.done() for future in running):
            give_up.set()
            return
        time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_write_load_loses_no_acknowledged_write(
    database_url: str, workers: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creators = [Creator() for _ in range(CREATORS)]
    give_up = threading.Event()
    with live_server(app_env(database_url), tmp_path, workers=workers) as server:
        with server.client() as client:
            owner = register_and_login(client, "loader@example.com")
        with ThreadPoolExecutor(CREATORS) as pool:
            running = [pool.submit(keep_creating, server, owner, creator, give_up) for creator in creators]
            wait_for_acknowledged_writes(creators, running, give_up)
            server.signal()  # SIGTERM, as `docker stop` sends it
            load_at_signal = [not future.done() for future in running]
            acknowledged_at_signal = sum(len(c.acknowledged) for c in creators)
            try:
                server.wait(timeout=20)
            finally:
                give_up.set()
            for future in running:
                future.result()
        log = server.log()

    acknowledged = [task_id for creator in creators for task_id in creator.acknowledged]
    stored = stored_task_ids(database_url)
    lost = set(acknowledged) - stored
    assert all(load_at_signal)  # every client was still writing when the signal came
    drained = len(acknowledged) - acknowledged_at_signal
    assert drained >= 1  # requests in flight at the signal were finished and answered, not dropped
    assert log.count(STOPPED) == workers  # a graceful stop, not a kill
    assert [status for creator in creators for status in creator.other_statuses] == []
    assert len(set(acknowledged)) == len(acknowledged) >= ACKNOWLEDGED_BEFORE_SIGTERM
    assert lost == set()
    unanswered = sum(creator.unanswered for creator in creators)
    with capsys.disabled():
        print(
            f"\n[durability] {make_url(database_url).get_backend_name()}, {workers} worker(s), SIGTERM under load: "
            f"{len(acknowledged)} acknowledged ({drained} after the signal), {len(lost)} lost; "
            f"{len(stored) - len(acknowledged)} stored without an answer; {unanswered} attempts refused",
            end="",
        )
