"""A user's listing reads its page in index order: neither database's planner needs a sort step.

This holds for every sort_by and order, by offset and by cursor, and for the status and
priority filters with the default sort. PostgreSQL is asked with `enable_sort` off, so a
plan that still sorts has no index it could read instead.
"""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

import crud
from models import SortField, SortOrder, TaskQuery
from storage import SortPosition, SortValue, TaskListing
from tests.conftest import sql_sent

AFTER: dict[SortField, SortValue] = {
    SortField.created_at: datetime(2026, 2, 14, 10, tzinfo=UTC),
    SortField.updated_at: datetime(2026, 2, 14, 10, tzinfo=UTC),
    SortField.priority: 3,
    SortField.title: "middle",
    SortField.due_date: date(2026, 3, 1),
}


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
def test_every_sort_reads_an_index_in_order(sql_engine: Engine, sort_by: SortField, order: SortOrder) -> None:
    query = TaskQuery(sort_by=sort_by, order=order)
    assert_no_sort(plan(sql_engine, TaskListing(query.model_copy(update={"offset": 40}))))
    assert_no_sort(plan(sql_engine, TaskListing(query, SortPosition(AFTER[sort_by], 10))))
    if sort_by is SortField.due_date:  # a cursor inside the trailing tasks without a due date
        assert_no_sort(plan(sql_engine, TaskListing(query, SortPosition(None, 10))))


@pytest.mark.parametrize("order", list(SortOrder))
def test_status_and_priority_filters_read_their_index_in_order(sql_engine: Engine, order: SortOrder) -> None:
    query = TaskQuery.model_validate({"status": ["pending"], "priority": 3, "order": order})
    assert_no_sort(plan(sql_engine, TaskListing(query)))
    assert_no_sort(plan(sql_engine, TaskListing(query, SortPosition(AFTER[SortField.created_at], 10))))
