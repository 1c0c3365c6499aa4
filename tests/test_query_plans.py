"""A user's listing reads its page in index order: neither database's planner needs a sort step.

This holds for every sort_by and order, by offset and by cursor, and for the status and
priority filters with the default sort. PostgreSQL is asked with `enable_sort` off, so a
plan that still sorts has no index it could read instead.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Select, event

import crud
from database import create_db_engine, upgrade_to_head
from models import SortField, SortOrder, TaskQuery
from storage import SortPosition, SortValue, TaskListing

AFTER: dict[SortField, SortValue] = {
    SortField.created_at: datetime(2026, 2, 14, 10, tzinfo=UTC),
    SortField.updated_at: datetime(2026, 2, 14, 10, tzinfo=UTC),
    SortField.priority: 3,
    SortField.title: "middle",
    SortField.due_date: date(2026, 3, 1),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        yield request.getfixturevalue("postgres_engine")
        return
    sqlite = create_db_engine(f"sqlite:///{tmp_path / 'plans.db'}", 5)
    upgrade_to_head(sqlite)
    yield sqlite
    sqlite.dispose()


def sql_sent(connection: Connection, statement: Select[Any]) -> tuple[str, Any]:
    """The SQL and driver parameters SQLAlchemy sends for `statement`."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        sent.append((args[2], args[3]))  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(connection, "before_cursor_execute", capture)
    try:
        connection.execute(statement).all()
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    return sent[-1]


def plan(engine: Engine, listing: TaskListing) -> str:
    with engine.begin() as connection:
        sql, parameters = sql_sent(connection, crud.page_ids(1, listing))
        if connection.dialect.name == "sqlite":
            return "\n".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters))
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}", parameters))


def assert_no_sort(query_plan: str) -> None:
    assert "TEMP B-TREE" not in query_plan  # SQLite's sort step
    assert "Sort" not in query_plan  # PostgreSQL's (Sort, Incremental Sort)
    assert "INDEX" in query_plan or "Index" in query_plan


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("sort_by", list(SortField))
def test_every_sort_reads_an_index_in_order(engine: Engine, sort_by: SortField, order: SortOrder) -> None:
    query = TaskQuery(sort_by=sort_by, order=order)
    assert_no_sort(plan(engine, TaskListing(query.model_copy(update={"offset": 40}))))
    assert_no_sort(plan(engine, TaskListing(query, SortPosition(AFTER[sort_by], 10))))
    if sort_by is SortField.due_date:  # a cursor inside the trailing tasks without a due date
        assert_no_sort(plan(engine, TaskListing(query, SortPosition(None, 10))))


@pytest.mark.parametrize("order", list(SortOrder))
def test_status_and_priority_filters_read_their_index_in_order(engine: Engine, order: SortOrder) -> None:
    query = TaskQuery.model_validate({"status": ["pending"], "priority": 3, "order": order})
    assert_no_sort(plan(engine, TaskListing(query)))
    assert_no_sort(plan(engine, TaskListing(query, SortPosition(AFTER[SortField.created_at], 10))))
