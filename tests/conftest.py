"""Fixtures: the whole API suite runs once per storage backend, through HTTP only.

`storage` is parametrised over memory, SQLite and PostgreSQL (the last only when
TEST_POSTGRES_URL is set, as `.ci/run` does); the app's `get_db` is overridden with it.
"""

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url

import auth
from auth import hash_password
from database import alembic_config, create_db_engine, migration_transaction, upgrade_to_head
from main import create_app
from memory_store import MemoryStore
from settings import Settings
from sql_store import SqlStore
from storage import Storage, get_db
from tests.overlap import Overlap

# Every backend by default; TEST_BACKENDS=sqlite narrows a run (the workshop verifier's does).
BACKENDS = os.environ.get("TEST_BACKENDS", "memory,sqlite,postgresql").split(",")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-signing"
PASSWORD = "correct-horse-battery"
ADMIN_EMAIL = "root@example.com"

# Slow tests that start no server: the fuzzer, and the tests that run pytest in a copy of the project.
SLOW_WITHOUT_SERVERS = {"test_schemathesis.py", "test_schema_change.py", "test_workshop.py"}

PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}

Headers = dict[str, str]
MakeUser = Callable[..., Headers]
MakeTask = Callable[..., dict[str, Any]]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` spreads the suite over every core (pytest -n <cores + 1> --dist loadgroup). The slow
    tests that start real servers time and load them, so they run one after another on one worker;
    the rest, the fuzzer and the workshop verifier's exercises included, go to any free core."""
    for item in items:
        if item.get_closest_marker("slow") and item.path.name not in SLOW_WITHOUT_SERVERS:
            item.add_marker(pytest.mark.xdist_group("servers"))
    items.sort(key=lambda item: item.path.name != "test_workshop.py")  # the longest first: no core idles at the end


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with test-sized costs: real hashing, but cheap (~1 ms)."""
    with pytest.MonkeyPatch.context() as patch:
        hash_passwords_with(patch, time_cost=1, memory_cost=1024)
        yield


def hash_passwords_with(patch: pytest.MonkeyPatch, time_cost: int, memory_cost: int) -> None:
    """Argon2id at these costs for the stored hashes and the unknown-email stand-in alike, so
    login timing stays equal."""
    hasher = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1),))
    patch.setattr(auth, "password_hasher", hasher)
    patch.setattr(auth, "UNKNOWN_USER_HASH", hasher.hash("no-such-user-timing-equaliser"))


def make_settings(**overrides: Any) -> Settings:
    """Test settings (memory, test secret, no demo data) with some values changed; `.env` is never read."""
    values: dict[str, Any] = {"database_url": "memory", "secret_key": TEST_SECRET, "demo_data": False, **overrides}
    return Settings(_env_file=None, **values)


@contextmanager
def running(settings: Settings, storage: Storage | None = None, **client_options: Any) -> Iterator[TestClient]:
    """A client for an app built with `settings`, its lifespan run; `storage` replaces get_db when given."""
    app = create_app(settings)
    if storage is not None:
        app.dependency_overrides[get_db] = lambda: storage
    with TestClient(app, **client_options) as client:
        yield client


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    """An RFC 9457 body with every contract field; a 422 also lists loc/msg/type for each error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert (body["type"], body["title"], body["status"]) == ("about:blank", HTTPStatus(status).phrase, status)
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 422:
        assert body["errors"], body
        for issue in body["errors"]:
            assert isinstance(issue["loc"], list) and issue["loc"]
            assert isinstance(issue["msg"], str) and issue["msg"]
            assert isinstance(issue["type"], str) and issue["type"]
    return body


def assert_invalid(response: Response, loc: list[str | int]) -> None:
    """A 422 problem that blames `loc` (or something inside it), not some unrelated field."""
    errors = assert_problem(response, 422)["errors"]
    assert any(error["loc"][: len(loc)] == loc for error in errors), errors


def migrate(engine: Engine, step: Callable[[Config, str], None], revision: str, config: Config | None = None) -> None:
    """`command.upgrade` or `command.downgrade` to `revision`, handed a connection as the app's startup does."""
    config = config or alembic_config()
    with migration_transaction(engine) as connection:
        config.attributes["connection"] = connection
        step(config, revision)


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    base_url = os.environ.get("TEST_POSTGRES_URL")
    if not base_url:
        pytest.skip("PostgreSQL backend: set TEST_POSTGRES_URL (CI does) to run the suite against PostgreSQL")
    name = f"tasks_test_{uuid.uuid4().hex[:12]}"
    admin_engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_db_engine(make_url(base_url).set(database=name).render_as_string(hide_password=False), 5)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin_engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest migration, made once; each test gets a copy (no re-migrating)."""
    path = tmp_path_factory.mktemp("template") / "tasks.db"
    engine = create_db_engine(f"sqlite:///{path}", 5)
    upgrade_to_head(engine)
    engine.dispose()  # closing the last connection folds the WAL into the file
    return path


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A throwaway, empty store of each kind."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        path = shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), tmp_path / "tasks.db")
        engine = create_db_engine(f"sqlite:///{path}", 5)
        yield SqlStore(engine)
        engine.dispose()
    else:
        yield SqlStore(emptied_postgres(request))


def emptied_postgres(request: pytest.FixtureRequest) -> Engine:
    """The session's PostgreSQL database with every table emptied."""
    engine: Engine = request.getfixturevalue("postgres_engine")
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE users, tasks, task_tags, idempotency_keys RESTART IDENTITY CASCADE"))
    return engine


def _empty_database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'tasks.db'}"
    return emptied_postgres(request).url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DATABASE_URL for an empty store the app opens itself (startup seeding uses the app's own store)."""
    return _empty_database_url(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that outlives the app: restarts only mean something there."""
    return _empty_database_url(request.param, request, tmp_path)


@pytest.fixture
def settings() -> Settings:
    """Settings for a test app; tests that need other values build their own."""
    return make_settings()


@pytest.fixture
def app(storage: Storage, settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.dependency_overrides[get_db] = lambda: storage
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def login(client: TestClient, email: str, password: str = PASSWORD) -> Headers:
    response = client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def make_user(client: TestClient) -> MakeUser:
    """Register a new user through the API and return their auth headers."""

    def make(email: str | None = None, password: str = PASSWORD) -> Headers:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = client.post("/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return login(client, email, password)

    return make


@pytest.fixture
def user(make_user: MakeUser) -> Headers:
    return make_user()


@pytest.fixture
def admin(client: TestClient, storage: Storage) -> Headers:
    """An admin: created the way ADMIN_EMAIL does at startup (admins never come from the API)."""

    async def create() -> None:
        await storage.ensure_admin(ADMIN_EMAIL, await hash_password(PASSWORD, wait_seconds=5))

    anyio.run(create)
    return login(client, ADMIN_EMAIL)


@pytest.fixture
def make_task(client: TestClient, user: Headers) -> MakeTask:
    """Create a task through the API (as `user` unless other headers are given)."""

    def make(headers: Headers | None = None, **fields: object) -> dict[str, Any]:
        body = {"title": "A task", **fields}
        response = client.post("/tasks", json=body, headers=headers or user)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    return make


@pytest.fixture
def overlap(app: FastAPI, storage: Storage) -> Overlap:
    """Proof for a concurrency test that its requests were really in flight at the same time
    (`peak > 1`), so a pass is not an accident of requests served one after another."""
    return Overlap(app, storage)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each SQL kind at the newest migration, for asking its planner."""
    engine = create_db_engine(_empty_database_url(request.param, request, tmp_path), 5)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def sql_sent(connection: Connection, statement: Select[Any]) -> tuple[str, Any]:
    """The SQL and driver parameters SQLAlchemy sends for `statement` (to EXPLAIN them)."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        sent.append((args[2], args[3]))  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(connection, "before_cursor_execute", capture)
    try:
        connection.execute(statement).all()
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    return sent[-1]
