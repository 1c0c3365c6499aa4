"""The benchmark's tasks: one deterministic recipe, seeded through the API's storage or straight into SQL.

Every (status, priority) pair is equally common, so the filtered scenario
(`status=pending&priority=3`) matches one task in twenty at every size.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

import crud
import database
import db_models
from auth import password_hasher
from storage import new_token_key

EMAIL = "bench@example.com"
PASSWORD = "bench-password-1234"  # noqa: S105 - the throwaway benchmark user's
USER_ID = 1
STATUSES = ("pending", "in_progress", "completed", "cancelled")
TAG_SETS: tuple[list[str], ...] = ([], ["home"], ["work", "urgent"])
FIRST_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
FIRST_DUE = date(2026, 6, 1)
FILTER_QUERY = "status=pending&priority=3"
BATCH = 20_000
TABLES = db_models.Base.metadata.tables


def task_fields(i: int) -> dict[str, Any]:
    """The API fields of the i-th task (1-based), as `TaskCreate` accepts them."""
    return {
        "title": f"Task {i}",
        "description": f"Details for task {i}" if i % 2 == 0 else None,
        "status": STATUSES[i % 4],
        "priority": i % 5 + 1,
        "due_date": None if i % 3 == 0 else FIRST_DUE + timedelta(days=i % 365),
        "tags": TAG_SETS[i % 3],
    }


def _task_row(i: int) -> dict[str, Any]:
    """A `tasks` row: timestamps one second apart, so every sort position is distinct."""
    fields = task_fields(i)
    created = FIRST_CREATED + timedelta(seconds=i)
    del fields["tags"]
    return {
        **fields,
        "id": i,
        "owner_id": USER_ID,
        "title_key": fields["title"].lower(),
        "description_key": fields["description"].lower() if fields["description"] else None,
        "created_at": created,
        "updated_at": created,
        "version": 1,
    }


def _batches(count: int) -> Iterator[range]:
    for start in range(1, count + 1, BATCH):
        yield range(start, min(start + BATCH, count + 1))


def seed_sql(url: str, count: int) -> None:
    """Create the schema, one user who owns every task, and `count` tasks, by executemany in batches."""
    engine = database.create_db_engine(url, 30)
    database.upgrade_to_head(engine)  # the schema exactly as the app builds it
    user = {"id": USER_ID, "email": EMAIL, "password_hash": password_hasher.hash(PASSWORD), "is_admin": False}
    user["token_key"] = new_token_key()
    with engine.begin() as connection:
        connection.execute(insert(TABLES["users"]), [{**user, "created_at": FIRST_CREATED}])
    insert_tasks = _insert_with_driver if engine.dialect.name == "sqlite" else _insert_with_core
    for ids in _batches(count):
        insert_tasks(engine, [_task_row(i) for i in ids], [tag for i in ids for tag in _tag_rows(i)])
    with engine.begin() as connection:
        crud.recount_tasks(connection)  # rows went in without crud.py, which keeps the counts
    if engine.dialect.name == "postgresql":  # explicit ids leave the sequences behind
        with engine.begin() as connection:
            for table in ("users", "tasks"):
                statement = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"  # noqa: S608
                connection.execute(text(statement))
    engine.dispose()


def _tag_rows(i: int) -> list[dict[str, Any]]:
    return [{"task_id": i, "position": p, "tag": tag} for p, tag in enumerate(task_fields(i)["tags"])]


def _insert_with_core(engine: Engine, tasks: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(TABLES["tasks"]), tasks)
        connection.execute(insert(TABLES["task_tags"]), tags)


def _insert_with_driver(engine: Engine, tasks: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
    """sqlite3's executemany, 2-3x faster than Core for a million rows; values still go through
    each column type's own bind processor, so they are stored exactly as the app stores them."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for table, rows in (("tasks", tasks), ("task_tags", tags)):
            names = list(rows[0])
            to_db = [
                TABLES[table].c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect) for name in names
            ]
            values = [[f(v) if f else v for f, v in zip(to_db, row.values(), strict=True)] for row in rows]
            cursor.execute("BEGIN")
            marks = ", ".join("?" * len(names))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values)  # noqa: S608
            cursor.execute("COMMIT")
    finally:
        connection.close()


def create_postgres_database(admin_url: str, name: str) -> str:
    """A throwaway database next to `admin_url`'s; returns its URL."""
    _run_autocommit(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, name: str) -> None:
    _run_autocommit(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_autocommit(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()
