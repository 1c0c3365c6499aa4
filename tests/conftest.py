"""Fixtures: the whole API suite runs once per storage backend, through HTTP only.

`storage` is parametrised over memory, SQLite and PostgreSQL (the last only when
TEST_POSTGRES_URL is set, as `.ci/run` does); the app's `get_db` is overridden with it.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from auth import hash_password
from crud import SqlStore
from database import create_db_engine, upgrade_to_head
from main import create_app
from memory_store import MemoryStore
from settings import Settings
from storage import Storage, get_db

BACKENDS = ["memory", "sqlite", "postgresql"]
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-signing"
PASSWORD = "correct-horse-battery"
ADMIN_EMAIL = "root@example.com"

Headers = dict[str, str]


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


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A throwaway, empty store of each kind."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'tasks.db'}", 5)
        upgrade_to_head(engine)
        yield SqlStore(engine)
        engine.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE users, tasks, task_tags, idempotency_keys RESTART IDENTITY CASCADE"))
        yield SqlStore(engine)


@pytest.fixture
def settings() -> Settings:
    """Settings for a test app; tests that need other values build their own."""
    return Settings(database_url="memory", secret_key=TEST_SECRET, demo_data=False)


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
def make_user(client: TestClient) -> Callable[..., Headers]:
    """Register a new user through the API and return their auth headers."""

    def make(email: str | None = None, password: str = PASSWORD) -> Headers:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = client.post("/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return login(client, email, password)

    return make


@pytest.fixture
def user(make_user: Callable[..., Headers]) -> Headers:
    return make_user()


@pytest.fixture
def admin(client: TestClient, storage: Storage) -> Headers:
    """An admin: created the way ADMIN_EMAIL does at startup (admins never come from the API)."""

    async def create() -> None:
        await storage.ensure_admin(ADMIN_EMAIL, await hash_password(PASSWORD))

    anyio.run(create)
    return login(client, ADMIN_EMAIL)


@pytest.fixture
def make_task(client: TestClient, user: Headers) -> Callable[..., dict[str, object]]:
    """Create a task through the API (as `user` unless other headers are given)."""

    def make(headers: Headers | None = None, **fields: object) -> dict[str, object]:
        body = {"title": "A task", **fields}
        response = client.post("/tasks", json=body, headers=headers or user)
        assert response.status_code == 201, response.text
        task: dict[str, object] = response.json()
        return task

    return make
