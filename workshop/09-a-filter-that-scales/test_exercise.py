"""Exercise 09: `GET /tasks?updated_since=<timestamp>`, and the index that keeps it fast.

The HTTP checks run once per backend (memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is
set); the plan checks ask SQLite's and PostgreSQL's planners how they would read a page, as
tests/test_query_plans.py does. Run them with `make exercise N=09`.
"""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import crud
from models import SortField, TaskQuery
from storage import SortPosition, TaskListing
from tests.conftest import Headers, MakeUser, sql_sent

MakeTask = Callable[..., dict[str, Any]]
IGNORED = "updated_since is ignored: add it to TaskQuery (models.py), then filter on it in each backend"


def titles(client: TestClient, headers: Headers, **params: Any) -> tuple[list[str], int]:
    """The titles GET /tasks lists with `params` (one page of up to 100), and its total."""
    response = client.get("/tasks", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, f"GET /tasks with {params} answered {response.status_code}: {response.text}"
    page = response.json()
    assert response.headers["x-total-count"] == str(page["total"]), "X-Total-Count differs from total"
    return [task["title"] for task in page["items"]], page["total"]


def assert_lists(client: TestClient, headers: Headers, expected: list[str], since: str, **params: Any) -> None:
    listed, total = titles(client, headers, updated_since=since, **params)
    everything, _ = titles(client, headers, **params)
    hint = f" ({IGNORED})" if listed == everything != expected else ""
    assert sorted(listed) == sorted(expected), f"updated_since={since} lists {listed}, not {expected}{hint}"
    assert total == len(expected), f"updated_since={since} lists {len(expected)} tasks but says total {total}"


def changed(client: TestClient, headers: Headers, task: dict[str, Any], **fields: Any) -> str:
    """PATCH the task; its new updated_at."""
    response = client.patch(f"/tasks/{task['id']}", json=fields, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["updated_at"])


def test_updated_since_lists_the_tasks_changed_at_or_after_it(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    first, second, _ = (make_task(title=title) for title in ("first", "second", "third"))
    since = str(second["updated_at"])
    assert_lists(client, user, ["second", "third"], since)
    changed(client, user, first, priority=5)
    assert_lists(client, user, ["first", "second", "third"], since)
    later = changed(client, user, second, title="second, edited")
    assert_lists(client, user, ["second, edited"], later)
    assert_lists(client, user, [], (datetime.now(UTC) + timedelta(days=1)).isoformat())


def test_the_same_instant_in_any_offset_gives_the_same_tasks(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    make_task(title="before")
    since = datetime.fromisoformat(str(make_task(title="at")["updated_at"]))
    make_task(title="after")
    for zone in (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))):
        assert_lists(client, user, ["at", "after"], since.astimezone(zone).isoformat())
    assert_lists(client, user, ["at", "after"], since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def test_updated_since_combines_with_filters_and_pages_by_offset_and_cursor(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    make_task(title="old", priority=3)
    since = str(make_task(title="new 1", priority=3)["updated_at"])
    for title in ("new 2", "new 3", "new 4"):
        make_task(title=title, priority=3)
    assert_lists(client, user, ["new 1", "new 2", "new 3", "new 4"], since, priority=3)
    walk: list[str] = []
    params: dict[str, Any] = {"updated_since": since, "sort_by": "updated_at", "order": "asc", "limit": 3}
    while True:
        response = client.get("/tasks", params=params, headers=user)
        assert response.status_code == 200, f"following next_cursor answered {response.status_code}: {response.text}"
        page = response.json()
        assert page["total"] == 4, f"every page of updated_since={since} should say total 4, not {page['total']}"
        walk += [task["title"] for task in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert walk == ["new 1", "new 2", "new 3", "new 4"], f"paging by cursor, oldest change first, gives {walk}"
    second_page, _ = titles(client, user, updated_since=since, sort_by="updated_at", order="asc", limit=3, offset=3)
    assert second_page == ["new 4"], f"the second page by offset gives {second_page}"


def test_you_see_your_changes_an_admin_everyones_and_no_token_none(
    client: TestClient, user: Headers, make_user: MakeUser, admin: Headers, make_task: MakeTask
) -> None:
    make_task(title="mine, old")
    since = str(make_task(title="mine, new")["updated_at"])
    make_task(make_user(), title="theirs, new")
    assert_lists(client, user, ["mine, new"], since)
    assert_lists(client, admin, ["mine, new", "theirs, new"], since)
    anonymous = client.get("/tasks", params={"updated_since": since})
    assert anonymous.status_code == 401, f"updated_since without a token must be a 401, not {anonymous.status_code}"


REFUSED = [
    pytest.param("yesterday", "not a timestamp at all", id="words"),
    pytest.param("2026-02-14T10:00:00", "no UTC offset: which 10:00?", id="no-offset"),
    pytest.param("2026-02-14", "a date, not a timestamp", id="a-date"),
    pytest.param(
        "1700000000", "a number: Pydantic reads it as Unix time unless told not to (see DueDate)", id="number"
    ),
]


@pytest.mark.parametrize(("bad", "why"), REFUSED)
def test_a_value_that_is_not_an_iso_timestamp_with_offset_is_a_422(
    client: TestClient, user: Headers, bad: str, why: str
) -> None:
    response = client.get("/tasks", params={"updated_since": bad}, headers=user)
    assert response.status_code == 422, f"updated_since={bad} must be a 422 ({why}), got {response.status_code}"
    locations = [error["loc"] for error in response.json()["errors"]]
    assert ["query", "updated_since"] in locations, f"the 422 should blame updated_since: {locations}"


def test_the_schema_documents_the_parameter(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/tasks"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    names = sorted(parameters)
    assert "updated_since" in names, f"GET /tasks documents no updated_since, only {names}: is it in TaskQuery?"
    schema = parameters["updated_since"]["schema"]
    assert not parameters["updated_since"].get("required"), "updated_since is optional: left out, nothing is filtered"
    assert (schema.get("type"), schema.get("format")) == ("string", "date-time"), f"not a date-time: {schema}"


# --- the plans ---------------------------------------------------------------

SINCE = datetime(2026, 2, 14, 10, tzinfo=UTC)


def plan(engine: Engine, owner_id: int | None, listing: TaskListing) -> str:
    """How the database would read that page of ids (PostgreSQL told to avoid sorting if it can)."""
    with engine.begin() as connection:
        sql, parameters = sql_sent(connection, crud.page_ids(owner_id, listing))
        filtered = re.search(r"updated_at >=|<= tasks\.updated_at", sql)
        assert filtered, f"the page's SQL does not compare updated_at with the timestamp: {IGNORED}"
        if connection.dialect.name == "sqlite":
            return "\n".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters))
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}", parameters))


def assert_an_index_serves(query_plan: str, who: str) -> None:
    """No sort step, no full scan, and the timestamp bounds an index range."""
    missing = f"{who}: no index serves it (add one to db_models.Task, with its migration)"
    sorts = "TEMP B-TREE" in query_plan or "Sort" in query_plan
    assert not sorts, f"{missing}; the plan sorts:\n{query_plan}"
    scans = "SCAN" in query_plan or "Seq Scan" in query_plan
    assert not scans, f"{missing}; the plan scans:\n{query_plan}"
    ranged = re.search(r"SEARCH .*updated_at>|Index Cond: .*updated_at >=", query_plan) is not None
    assert ranged, f"{missing}; updated_since does not bound the index range:\n{query_plan}"


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("owner_id", [1, None], ids=["a-user", "an-admin"])
def test_a_page_changed_since_is_read_from_an_index_in_order(
    sql_engine: Engine, owner_id: int | None, order: str
) -> None:
    query = TaskQuery.model_validate({"updated_since": SINCE, "sort_by": SortField.updated_at, "order": order})
    who = f"{'a user' if owner_id else 'an admin'}'s tasks updated since, sorted by updated_at {order}"
    assert_an_index_serves(plan(sql_engine, owner_id, TaskListing(query.model_copy(update={"offset": 40}))), who)
    after = SortPosition(SINCE + timedelta(hours=1), 10)
    assert_an_index_serves(plan(sql_engine, owner_id, TaskListing(query, after)), f"{who}, from a cursor")
