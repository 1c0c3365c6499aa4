"""Alembic owns the SQL schema: models and migrations agree, and every step can be undone.

Runs on SQLite always and on PostgreSQL when TEST_POSTGRES_URL is set.
"""

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, inspect, select

from database import create_db_engine, schema_is_current, upgrade_to_head
from db_models import Base
from main import create_app
from settings import Settings
from tests.conftest import TEST_SECRET, migrate

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"alembic_version", "users", "tasks", "task_tags", "idempotency_keys", "task_counts"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database, with nothing migrated yet."""
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'migrate.db'}", 5)
        yield engine
        engine.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        downgrade_to_base(engine)
        yield engine
        upgrade_to_head(engine)  # leave the session's database as the other tests expect it


def downgrade_to_base(engine: Engine) -> None:
    migrate(engine, command.downgrade, "base")


# The PostgreSQL-only expression index is compared on PostgreSQL; SQLite never has it.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    upgrade_to_head(empty_engine)
    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    upgrade_to_head(empty_engine)
    assert schema_is_current(empty_engine)
    downgrade_to_base(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == {"alembic_version"}
    assert not schema_is_current(empty_engine)
    upgrade_to_head(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == TABLES
    assert schema_is_current(empty_engine)


def test_the_counts_migration_counts_the_tasks_already_stored(empty_engine: Engine) -> None:
    migrate(empty_engine, command.upgrade, "0001")
    now = datetime.now(UTC)
    with empty_engine.begin() as connection:
        users = [{"id": n, "email": f"u{n}@example.com", "password_hash": "-", "is_admin": False} for n in (1, 2)]
        connection.execute(insert(Base.metadata.tables["users"]), [{**user, "created_at": now} for user in users])
        groups = [(1, "pending", 1), (1, "pending", 1), (1, "completed", 3), (2, "pending", 1)]
        tasks = [
            {"owner_id": owner, "status": status, "priority": priority, "title": "t", "title_key": "t"}
            | {"created_at": now, "updated_at": now, "version": 1}
            for owner, status, priority in groups
        ]
        connection.execute(insert(Base.metadata.tables["tasks"]), tasks)
    upgrade_to_head(empty_engine)
    with empty_engine.connect() as connection:
        counts = set(connection.execute(select(Base.metadata.tables["task_counts"])))
    assert counts == {(1, "pending", 1, 2), (1, "completed", 3, 1), (2, "pending", 1, 1)}


def test_a_stale_postgresql_schema_stops_startup(postgres_engine: Engine) -> None:
    """PostgreSQL is migrated by `alembic upgrade head`, so the app refuses an unmigrated one."""
    url = postgres_engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET, demo_data=False))
    downgrade_to_base(postgres_engine)
    try:
        with pytest.raises(RuntimeError, match="alembic upgrade head"), TestClient(app):
            pass
    finally:
        upgrade_to_head(postgres_engine)


def test_example_database_is_at_head_with_demo_data(tmp_path: Path) -> None:
    """`tasks.db.example`, copied as the README says, serves the demo logins and tasks."""
    database = tmp_path / "tasks.db"
    shutil.copy(ROOT / "tasks.db.example", database)
    engine = create_db_engine(f"sqlite:///{database}", 5)
    assert schema_is_current(engine)
    engine.dispose()
    app = create_app(Settings(database_url=f"sqlite:///{database}", secret_key=TEST_SECRET, demo_data=False))
    with TestClient(app) as client:
        token = client.post("/auth/token", data={"username": "alice@example.com", "password": "alice-password"})
        assert token.status_code == 200
        alice = {"Authorization": f"Bearer {token.json()['access_token']}"}
        page = client.get("/tasks", headers=alice, params={"limit": 100}).json()
        assert page["total"] == 7
        admin_token = client.post("/auth/token", data={"username": "admin@example.com", "password": "admin-password"})
        admin = {"Authorization": f"Bearer {admin_token.json()['access_token']}"}
        assert client.get("/tasks", headers=admin).json()["total"] == 12
