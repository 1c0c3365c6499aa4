"""Exercise 02: `GET /tasks?overdue=true` lists the open tasks whose due date has passed.

Every check runs once per backend (memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is set).
Run them with `make exercise N=02`.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from storage import Storage
from tests.conftest import Headers, MakeUser

MakeTask = Callable[..., dict[str, Any]]

# Titles say what each task is; the overdue ones start with "late".
LATE = ["late: due yesterday", "late: due last month, in progress", "late: due last week"]
NOT_LATE = [
    "done: completed yesterday",
    "dropped: cancelled yesterday",
    "on time: due today",
    "on time: due tomorrow",
    "on time: no due date",
]


def day(offset: int) -> str:
    """Today in UTC, moved by `offset` days, as the API writes dates."""
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


def make_tasks(make_task: MakeTask, headers: Headers | None = None) -> dict[str, int]:
    """One task of each kind (created oldest first in LATE + NOT_LATE order); their ids by title."""
    fields: list[dict[str, Any]] = [
        {"due_date": day(-1)},
        {"due_date": day(-30), "status": "in_progress"},
        {"due_date": day(-7)},
        {"due_date": day(-1), "status": "completed"},
        {"due_date": day(-1), "status": "cancelled"},
        {"due_date": day(0)},
        {"due_date": day(1)},
        {},
    ]
    tasks = [make_task(headers, title=title, **task) for title, task in zip(LATE + NOT_LATE, fields, strict=True)]
    return {str(task["title"]): int(str(task["id"])) for task in tasks}


@pytest.fixture
def backend(storage: Storage) -> str:
    return storage.kind


def listing(client: TestClient, headers: Headers, backend: str, **params: Any) -> tuple[list[str], int]:
    """The titles on one page of GET /tasks with `params`, and the total it reports."""
    request = f"GET /tasks?{urlencode(params)}"
    response = client.get("/tasks", params=params, headers=headers)
    assert response.status_code == 200, f"{request} answered {response.status_code} on {backend}: {response.text}"
    page = response.json()
    assert response.headers["x-total-count"] == str(page["total"]), f"{request}: X-Total-Count differs from total"
    return [task["title"] for task in page["items"]], page["total"]


def assert_lists(client: TestClient, headers: Headers, backend: str, expected: list[str], **params: Any) -> list[str]:
    """GET /tasks with `params` lists exactly `expected` (in any order), and counts them in `total`."""
    titles, total = listing(client, headers, backend, limit=100, **params)
    request = f"GET /tasks?{urlencode(params)}"
    if set(titles) != set(expected) and "overdue" in params:
        ignored = " (everything: this backend ignores the parameter)" if len(titles) == len(LATE + NOT_LATE) else ""
        pytest.fail(f"{request} on {backend} should list {sorted(expected)}, but lists {sorted(titles)}{ignored}")
    assert sorted(titles) == sorted(expected), f"{request} on {backend} lists {sorted(titles)}"
    assert total == len(expected), f"{request} on {backend}: total is {total}, but {len(expected)} tasks match"
    return titles


def test_overdue_true_lists_only_open_tasks_past_their_due_date(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    assert_lists(client, user, backend, LATE, overdue="true")


def test_overdue_false_lists_all_the_others(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    assert_lists(client, user, backend, NOT_LATE, overdue="false")


def test_without_the_parameter_nothing_is_filtered(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    assert_lists(client, user, backend, LATE + NOT_LATE)


def test_overdue_combines_with_the_other_filters_and_sorts(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    assert_lists(client, user, backend, [LATE[1]], overdue="true", status="in_progress")
    assert_lists(client, user, backend, [NOT_LATE[0]], overdue="false", status="completed")
    titles = assert_lists(client, user, backend, LATE, overdue="true", sort_by="due_date", order="asc")
    assert titles == [LATE[1], LATE[2], LATE[0]], f"overdue tasks sorted by due date come out as {titles}"


def titles_by_cursor(client: TestClient, headers: Headers, limit: int, **params: str) -> tuple[list[str], set[int]]:
    """Every title of a listing, page by page along `next_cursor`, and the totals the pages report."""
    titles: list[str] = []
    totals: set[int] = set()
    cursor: dict[str, str] = {}
    for _ in range(10):  # more pages than any check needs: a cursor that never ends stops here
        response = client.get("/tasks", params={**params, "limit": limit, **cursor}, headers=headers)
        assert response.status_code == 200, f"following next_cursor answered {response.status_code}: {response.text}"
        page = response.json()
        titles += [task["title"] for task in page["items"]]
        totals.add(page["total"])
        if page["next_cursor"] is None:
            break
        cursor = {"cursor": page["next_cursor"]}
    return titles, totals


def test_overdue_pages_by_offset_and_by_cursor(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    newest_first = LATE[::-1]  # the default sort: created_at, descending
    for offset, title in enumerate(newest_first):
        titles, total = listing(client, user, backend, overdue="true", limit=1, offset=offset)
        assert (titles, total) == ([title], 3), f"overdue=true&limit=1&offset={offset} gives {titles}, total {total}"
    titles, totals = titles_by_cursor(client, user, 2, overdue="true")
    assert titles == newest_first, f"paging through overdue=true by cursor on {backend} gives {titles}"
    assert totals == {3}, f"every page of overdue=true should say total 3, not {sorted(totals)}"


def test_a_task_stops_being_overdue_when_it_is_done_or_moved(
    client: TestClient, user: Headers, make_task: MakeTask, backend: str
) -> None:
    ids = make_tasks(make_task)
    done = client.patch(f"/tasks/{ids[LATE[0]]}", json={"status": "completed"}, headers=user)
    assert done.status_code == 200, done.text
    moved = client.patch(f"/tasks/{ids[LATE[1]]}", json={"due_date": day(3)}, headers=user)
    assert moved.status_code == 200, moved.text
    late = client.patch(f"/tasks/{ids[NOT_LATE[4]]}", json={"due_date": day(-2)}, headers=user)
    assert late.status_code == 200, late.text
    assert_lists(client, user, backend, [LATE[2], NOT_LATE[4]], overdue="true")


def test_you_see_only_your_own_overdue_tasks_an_admin_all_and_no_token_none(
    client: TestClient, user: Headers, make_user: MakeUser, admin: Headers, make_task: MakeTask, backend: str
) -> None:
    make_tasks(make_task)
    make_task(make_user(), title="late: someone else's", due_date=day(-1))
    assert_lists(client, user, backend, LATE, overdue="true")
    assert_lists(client, admin, backend, [*LATE, "late: someone else's"], overdue="true")
    anonymous = client.get("/tasks", params={"overdue": "true"})
    assert anonymous.status_code == 401, f"GET /tasks?overdue=true without a token must be a 401, not {anonymous}"


@pytest.mark.parametrize("bad", ["maybe", "2"])
def test_a_value_that_is_not_a_boolean_is_a_422(client: TestClient, user: Headers, bad: str) -> None:
    response = client.get("/tasks", params={"overdue": bad}, headers=user)
    refused = response.status_code == 422
    assert refused, f"GET /tasks?overdue={bad} must be a 422 (not a boolean), got {response.status_code}"
    locations = [error["loc"] for error in response.json()["errors"]]
    assert ["query", "overdue"] in locations, f"the 422 should blame the overdue parameter: {locations}"


def test_the_schema_documents_the_parameter(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/tasks"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    names = sorted(parameters)
    assert "overdue" in names, f"GET /tasks documents no overdue parameter, only {names}: is it a field of TaskQuery?"
    overdue = parameters["overdue"]
    assert overdue["in"] == "query", f"overdue should be a query parameter, not in {overdue['in']}"
    assert not overdue.get("required"), "overdue is optional: left out, nothing is filtered"
    assert overdue["schema"].get("type") == "boolean", f"overdue should be documented as a boolean: {overdue['schema']}"
