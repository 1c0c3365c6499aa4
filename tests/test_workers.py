"""`uvicorn main:app --workers 2` stays correct: the guarantees live in the database and Redis,
not in one process's memory.

Each test starts a real two-worker server (configured as docker-compose runs it: production
mode) and hits it from many fresh connections at once; the access log names the worker (pid)
behind every answer, and each test checks that both workers answered, so no result can come
from one process alone. The last test keeps the Dockerfile and docker-compose.yml running
exactly the commands tested here.
"""

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from sqlalchemy import create_engine, func, select

import db_models
from database import schema_is_current
from tests.conftest import PASSWORD
from tests.live_server import (
    MIGRATE_COMMAND,
    ROOT,
    LiveServer,
    app_env,
    live_server,
    pids,
    register_and_login,
    simultaneously,
    throwaway_database,
    unique_email,
    uvicorn_command,
)

WORKERS = 2
LOGIN_LIMIT = 5
WRONG = "wrong-password"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A two-worker server on a fresh database; failed logins counted in Redis when it is up."""
    directory = tmp_path_factory.mktemp(f"workers-{request.param}")
    config = {"APP_ENV": "production", "LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT}/minute"}
    if redis_available():
        config["RATE_LIMIT_STORAGE"] = REDIS_URL
    with (
        throwaway_database(request.param, directory) as url,
        live_server(app_env(url, **config), directory, workers=WORKERS) as running,
    ):
        yield running


def fresh_connection(server: LiveServer) -> httpx.Client:
    """A new TCP connection each time, so the kernel hands requests to either worker."""
    return server.client(headers={"Connection": "close"})


def interleaved(pinned: dict[int, list[httpx.Client]]) -> list[httpx.Client]:
    """The pinned connections, alternating between workers."""
    return [client for group in zip(*pinned.values(), strict=True) for client in group]


@pytest.mark.slow
def test_if_match_lets_exactly_one_of_20_simultaneous_patches_win(server: LiveServer) -> None:
    with server.client() as client:
        owner = register_and_login(client, unique_email())
        created = client.post("/tasks", json={"title": "Contended"}, headers=owner)
    task_id, etag = created.json()["id"], created.headers["ETag"]

    with server.pinned_clients(per_worker=10) as pinned:
        connections = interleaved(pinned)
        responses = simultaneously(
            20,
            lambda writer: connections[writer].patch(
                f"/tasks/{task_id}", json={"title": f"Writer {writer}"}, headers={**owner, "If-Match": etag}
            ),
        )

    assert Counter(response.status_code for response in responses) == {200: 1, 412: 19}
    assert all(r.headers["content-type"] == "application/problem+json" for r in responses if r.status_code == 412)
    winner = next(response for response in responses if response.status_code == 200)
    with server.client() as client:
        stored = client.get(f"/tasks/{task_id}", headers=owner)
    assert stored.json()["title"] == winner.json()["title"]
    assert stored.headers["ETag"] == winner.headers["ETag"] != etag
    answered_by = Counter(entry.pid for entry in server.answered("PATCH", f"/tasks/{task_id}", 20))
    assert answered_by == dict.fromkeys(pinned, 10)


@pytest.mark.slow
def test_idempotency_key_makes_10_simultaneous_posts_one_task(server: LiveServer) -> None:
    with server.client() as client:
        owner = register_and_login(client, unique_email())
    headers = {**owner, "Idempotency-Key": "create-once"}
    earlier = len(server.answered("POST", "/tasks", 0))  # uvicorn logs a request before answering it

    with server.pinned_clients(per_worker=5) as pinned:
        connections = interleaved(pinned)
        responses = simultaneously(
            10,
            lambda sender: connections[sender].post(
                "/tasks", json={"title": "Exactly once", "tags": ["retry"]}, headers=headers
            ),
        )

    assert [response.status_code for response in responses] == [201] * 10, [r.text for r in responses]
    assert len({response.json()["id"] for response in responses}) == 1
    assert len({response.text for response in responses}) == 1  # the replay is the original body
    with server.client() as client:
        assert client.get("/tasks", headers=owner).json()["total"] == 1
    answered_by = Counter(entry.pid for entry in server.answered("POST", "/tasks", earlier + 10)[earlier:])
    assert answered_by == dict.fromkeys(pinned, 5)


@pytest.mark.slow
def test_failed_login_limit_is_shared_by_both_workers(server: LiveServer) -> None:
    """Failures counted in Redis: each worker saw fewer than the limit itself, yet both answer 429."""
    if "RATE_LIMIT_STORAGE" not in server.env:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set TEST_REDIS_URL; CI runs Redis)")
    email = unique_email()
    with server.client() as client:
        register_and_login(client, email)

    with server.pinned_clients(per_worker=1) as pinned:
        first, second = interleaved(pinned)

        def attempt(connection: httpx.Client, password: str) -> httpx.Response:
            return connection.post("/auth/token", data={"username": email, "password": password})

        failures = [attempt(connection, WRONG) for connection in (first, second, first, second, first)]
        throttled = [attempt(second, WRONG), attempt(first, WRONG), attempt(second, PASSWORD)]

    assert len(failures) == LOGIN_LIMIT
    assert [response.status_code for response in failures] == [401] * LOGIN_LIMIT
    assert [response.status_code for response in throttled] == [429] * 3
    assert all(1 <= int(response.headers["Retry-After"]) <= 60 for response in throttled)
    assert all(response.headers["content-type"] == "application/problem+json" for response in throttled)
    failed_at = Counter(entry.pid for entry in server.answered("POST", "/auth/token", LOGIN_LIMIT, status=401))
    assert sorted(failed_at.values()) == [2, 3]  # neither worker reached the limit on its own
    assert pids(server.answered("POST", "/auth/token", 3, status=429)) == set(pinned)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_both_workers_migrate_a_brand_new_sqlite_file(attempt: int, tmp_path: Path) -> None:
    """Both workers run the migrations at startup; BEGIN IMMEDIATE makes the second one wait
    for the first and then find the schema current, instead of failing or migrating twice."""
    database = tmp_path / f"fresh-{attempt}.db"
    with live_server(app_env(f"sqlite:///{database}"), tmp_path, workers=WORKERS) as server:
        log = server.log()
        assert log.count("Application startup complete.") == WORKERS
        assert "Traceback" not in log
        assert "startup failed" not in log
        with server.client() as client:
            owner = register_and_login(client, unique_email())
            ready = client.get("/ready")

        def create(index: int) -> int:
            with fresh_connection(server) as client:
                return client.post("/tasks", json={"title": f"Task {index}"}, headers=owner).status_code

        assert simultaneously(8, create) == [201] * 8
    assert ready.json() == {"status": "ready", "storage": "sqlite"}
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert schema_is_current(engine)
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(db_models.Task)) == 8
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_two_workers_seed_a_fresh_store_once(attempt: int, tmp_path: Path) -> None:
    """Both workers find the new file empty and race to load the demo data and the admin:
    the loser must start anyway, and the data must exist exactly once."""
    database = tmp_path / f"seeded-{attempt}.db"
    environment = app_env(
        f"sqlite:///{database}", DEMO_DATA="true", ADMIN_EMAIL="boss@example.com", ADMIN_PASSWORD=PASSWORD
    )
    with live_server(environment, tmp_path, workers=WORKERS) as server:
        log = server.log()
        assert log.count("Application startup complete.") == WORKERS
        assert "Traceback" not in log
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            emails = connection.scalars(select(db_models.User.email).order_by(db_models.User.email)).all()
            tasks = connection.scalar(select(func.count()).select_from(db_models.Task))
    finally:
        engine.dispose()
    assert emails == ["admin@example.com", "alice@example.com", "bob@example.com", "boss@example.com"]
    assert tasks == 12


def test_deployment_files_run_the_tested_commands() -> None:
    """The Dockerfile serves the app as these tests do, and compose migrates before serving."""
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == uvicorn_command("0.0.0.0", WORKERS)  # noqa: S104
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["migrate"]["command"] == MIGRATE_COMMAND
    assert "command" not in services["api"]  # the image's CMD
    assert services["api"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for name in ("migrate", "api"):
        environment = services[name]["environment"]
        assert environment["APP_ENV"] == "production"
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")  # required from the environment
