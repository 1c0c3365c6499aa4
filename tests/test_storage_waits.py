"""Storage waits are bounded, on a real server over a SQLite file that another program holds.

A request waits for storage at most STORAGE_TIMEOUT_SECONDS (+1 s) from its arrival, queueing
inside the app included, and reads keep answering while writers wait for the lock. If the file
is deleted or replaced under the server, writes and /ready answer 503, so no 2xx is ever given
for a write that would not be there after a restart.
"""

import shutil
import sqlite3
import statistics
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.live_server import (
    LiveServer,
    app_env,
    live_server,
    register_and_login,
    simultaneously,
    sqlite_file,
    sqlite_write_lock,
    throwaway_database,
    timed,
)

pytestmark = pytest.mark.slow

TIMEOUT = 2.0
OWNER = "holder@example.com"
WRITERS = 12
Answer = tuple[float, httpx.Response]  # (seconds it took, the response)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with throwaway_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(app_env(database_url, STORAGE_TIMEOUT_SECONDS=str(TIMEOUT)), tmp_path) as running:
        yield running


@pytest.fixture
def owner(server: LiveServer) -> dict[str, str]:
    with server.client() as client:
        return register_and_login(client, OWNER)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1


def keep_reading(server: LiveServer, owner: dict[str, str], task_id: int, until: threading.Event) -> list[Answer]:
    """A task and a page, read again and again until the writers are answered."""
    answers = []
    with server.client(headers=owner) as client:
        while not until.wait(0.05):
            for url in (f"/tasks/{task_id}", "/tasks?limit=5"):
                answers.append(timed(partial(client.get, url)))
    return answers


def test_writers_waiting_for_a_held_lock_get_503_in_time_and_reads_go_on(
    server: LiveServer, owner: dict[str, str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with server.client(headers=owner) as client:
        task = client.post("/tasks", json={"title": "Before the lock"}).json()

    def post(index: int) -> Answer:
        with server.client(headers=owner) as writer:
            return timed(partial(writer.post, "/tasks", json={"title": f"Waits {index}"}))

    written = threading.Event()
    with sqlite_write_lock(sqlite_file(database_url)), ThreadPoolExecutor(1) as reader:
        reads = reader.submit(keep_reading, server, owner, task["id"], written)
        try:
            writes = simultaneously(WRITERS, post)
        finally:
            written.set()
        read_answers = reads.result()

    for _, response in writes:
        assert_unavailable(response)
    write_seconds = [seconds for seconds, _ in writes]
    assert max(write_seconds) <= TIMEOUT + 1, write_seconds
    assert {response.status_code for _, response in read_answers} == {200}
    read_seconds = [seconds for seconds, _ in read_answers]
    assert max(read_seconds) <= 1, read_seconds
    with capsys.disabled():
        print(
            f"\n[waits] {WRITERS} POSTs under a held lock, timeout {TIMEOUT} s: 503 after max "
            f"{max(write_seconds):.2f} s, median {statistics.median(write_seconds):.2f} s; {len(read_seconds)} "
            f"GETs meanwhile: max {max(read_seconds):.3f} s, median {statistics.median(read_seconds):.3f} s",
            end="",
        )

    with server.client(headers=owner) as client:  # the lock is gone: writes go through again
        assert client.post("/tasks", json={"title": "After the lock"}).status_code == 201
        assert client.get("/ready").status_code == 200
        assert client.get("/tasks").json()["total"] == 2


def remove_database(path: Path) -> None:
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        (path.parent / name).unlink(missing_ok=True)


def replace_database(path: Path) -> None:
    """Move a copy over the file, as a restore from backup would (stale -wal and -shm removed)."""
    copy = path.with_name(f"copy-of-{path.name}")
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    remove_database(path)
    shutil.move(copy, path)


@pytest.mark.parametrize("change", [remove_database, replace_database])
def test_a_deleted_or_replaced_file_refuses_writes_and_readiness(
    server: LiveServer, owner: dict[str, str], database_url: str, tmp_path: Path, change: Callable[[Path], None]
) -> None:
    path = sqlite_file(database_url)
    with server.client(headers=owner) as client:
        acknowledged = {client.post("/tasks", json={"title": f"Kept {n}"}).json()["id"] for n in range(5)}
        first = min(acknowledged)
        change(path)
        for n in range(5):
            assert_unavailable(client.post("/tasks", json={"title": f"Would be lost {n}"}))
            assert_unavailable(client.patch(f"/tasks/{first}", json={"priority": 5}))
        assert_unavailable(client.get("/ready"))
        assert client.get("/health").status_code == 200
    server.stop()

    if change is remove_database:
        return  # what was acknowledged went with the file, and nothing was acknowledged after it
    with live_server(app_env(database_url), tmp_path / "restarted") as restarted, restarted.client() as client:
        login = client.post("/auth/token", data={"username": OWNER, "password": PASSWORD}).json()
        client.headers["Authorization"] = f"Bearer {login['access_token']}"
        assert acknowledged <= {task["id"] for task in client.get("/tasks").json()["items"]}
