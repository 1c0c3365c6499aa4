"""Many clients writing at once: 64 clients, 25 creates each, against one real server process.

On SQLite every write takes the single write lock (BEGIN IMMEDIATE) and waits for it with a
busy timeout, so none fails with "database is locked"; the connection pool is as large as
the thread pool, so none waits out a pool timeout. Either failure would surface as a 503.
"""

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

import db_models
from tests.live_server import app_env, live_server, register_and_login, simultaneously, throwaway_database

pytestmark = pytest.mark.slow

CLIENTS = 64
CREATES_PER_CLIENT = 25
FAILURE_SIGNS = ("database is locked", "QueuePool limit", "Traceback")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def count_tasks_directly(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(db_models.Task)) or 0
    finally:
        engine.dispose()


def summary(database_url: str, responses: list[httpx.Response], elapsed: float) -> str:
    """One line for the test log: how fast the server took the load."""
    server_ms = sorted(float(response.headers["Server-Timing"].split("dur=")[1]) for response in responses)
    return (
        f"\n[concurrency] {make_url(database_url).get_backend_name()}: {len(responses)} creates by {CLIENTS} "
        f"clients in {elapsed:.2f} s = {len(responses) / elapsed:.0f} req/s, all 201; server time per request "
        f"median {server_ms[len(responses) // 2]:.0f} ms, max {server_ms[-1]:.0f} ms"
    )


def test_64_clients_creating_25_tasks_each_all_succeed(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with live_server(app_env(database_url), tmp_path) as server:
        with server.client() as client:
            owner = register_and_login(client, "writer@example.com")

        def one_client(number: int) -> list[httpx.Response]:
            """A client with its own keep-alive connection, creating its tasks one after another."""
            with server.client(headers=owner) as client:
                return [
                    client.post("/tasks", json={"title": f"Client {number} task {index}", "tags": [f"c{number}"]})
                    for index in range(CREATES_PER_CLIENT)
                ]

        started = time.perf_counter()
        responses = [response for batch in simultaneously(CLIENTS, one_client) for response in batch]
        elapsed = time.perf_counter() - started

        with server.client(headers=owner) as client:
            listed = client.get("/tasks", params={"limit": 1})
            one_client_tasks = client.get("/tasks", params={"tag": "c7", "limit": 100})
        log = server.log()

    expected = CLIENTS * CREATES_PER_CLIENT
    failed = [response.text for response in responses if response.status_code != 201]
    assert Counter(response.status_code for response in responses) == {201: expected}, failed[:3]
    assert len({response.json()["id"] for response in responses}) == expected
    assert listed.json()["total"] == expected
    assert listed.headers["X-Total-Count"] == str(expected)
    assert sorted(task["title"] for task in one_client_tasks.json()["items"]) == sorted(
        f"Client 7 task {index}" for index in range(CREATES_PER_CLIENT)
    )
    assert count_tasks_directly(database_url) == expected
    assert [sign for sign in FAILURE_SIGNS if sign in log] == [], log[-3000:]
    with capsys.disabled():
        print(summary(database_url, responses, elapsed), end="")
