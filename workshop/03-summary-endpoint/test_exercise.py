"""Exercise 03: GET /tasks/summary counts the caller's tasks per status, and the overdue ones.

Run with `make exercise N=03`. Every check runs once per backend: memory, SQLite, and
PostgreSQL when TEST_POSTGRES_URL is set.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Headers, MakeUser

MakeTask = Callable[..., dict[str, object]]
ALL_ZERO = {"pending": 0, "in_progress": 0, "completed": 0, "cancelled": 0}


def summary(client: TestClient, headers: Headers) -> dict[str, Any]:
    """The caller's summary, after checking that the route answered it at all."""
    response = client.get("/tasks/summary", headers=headers)
    assert response.status_code != 422, (
        "GET /tasks/summary answered 422: the request reached GET /tasks/{task_id}, which wants a "
        "number for task_id. Add a summary route in main.py, above read_task (routes match in order)."
    )
    assert response.status_code == 200, f"GET /tasks/summary answered {response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    assert set(body) == {"by_status", "overdue"}, f"The summary should have by_status and overdue, got {body}"
    return body


def test_every_status_is_counted_zeros_included(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    assert summary(client, user) == {"by_status": ALL_ZERO, "overdue": 0}, "A new account has no tasks at all"
    for status in ("pending", "pending", "in_progress", "completed"):
        make_task(status=status)
    counts = summary(client, user)["by_status"]
    assert counts == {"pending": 2, "in_progress": 1, "completed": 1, "cancelled": 0}, (
        f"by_status should count every status, cancelled: 0 included; got {counts}"
    )
    assert list(counts) == list(ALL_ZERO), f"List the statuses in TaskStatus order, got {list(counts)}"


def test_overdue_means_due_before_today_and_still_open(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    make_task(due_date=str(yesterday))  # overdue
    make_task(due_date=str(today - timedelta(days=30)), status="in_progress")  # overdue
    make_task(due_date=str(yesterday), status="completed")
    make_task(due_date=str(yesterday), status="cancelled")
    make_task(due_date=str(today))  # due today is not late yet
    make_task(due_date=str(tomorrow))
    make_task()  # no due date, never overdue
    overdue = summary(client, user)["overdue"]
    assert overdue == 2, f"overdue should be 2 (due before today UTC, neither completed nor cancelled), got {overdue}"


def test_only_your_own_tasks_count(
    client: TestClient, user: Headers, make_user: MakeUser, admin: Headers, make_task: MakeTask
) -> None:
    other = make_user()
    make_task(headers=other, status="completed")
    make_task(headers=other, due_date="2000-01-01")
    make_task(status="cancelled")
    assert summary(client, user) == {"by_status": {**ALL_ZERO, "cancelled": 1}, "overdue": 0}, (
        "The summary counted someone else's tasks: count only the caller's"
    )
    assert summary(client, admin) == {"by_status": ALL_ZERO, "overdue": 0}, (
        "An admin's summary counts the admin's own tasks only (they have none here), not everyone's"
    )


def test_the_summary_follows_every_change(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    late = make_task(due_date="2000-01-01")
    done = make_task(status="completed")
    assert client.patch(f"/tasks/{late['id']}", json={"status": "in_progress", "priority": 5}, headers=user).is_success
    assert client.patch(f"/tasks/{done['id']}", json={"priority": 3}, headers=user).is_success
    assert summary(client, user) == {"by_status": {**ALL_ZERO, "in_progress": 1, "completed": 1}, "overdue": 1}
    assert client.patch(f"/tasks/{late['id']}", json={"status": "completed"}, headers=user).is_success
    assert summary(client, user) == {"by_status": {**ALL_ZERO, "completed": 2}, "overdue": 0}, (
        "A completed task is not overdue any more"
    )
    assert client.delete(f"/tasks/{done['id']}", headers=user).status_code == 204
    assert summary(client, user)["by_status"] == {**ALL_ZERO, "completed": 1}, "A deleted task no longer counts"


def test_reading_one_task_still_works(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    task = make_task()
    summary(client, user)
    assert client.get(f"/tasks/{task['id']}", headers=user).status_code == 200, "GET /tasks/{task_id} stopped working"
    assert client.get(f"/tasks/{task['id']}", headers=make_user()).status_code == 404, (
        "Another user's task must still be a 404"
    )


def test_the_summary_is_read_only(client: TestClient, user: Headers) -> None:
    summary(client, user)
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.request(method, "/tasks/summary", json={"title": "A task"}, headers=user)
        assert response.status_code == 405, (
            f"{method} /tasks/summary answered {response.status_code}: {method} /tasks/{{task_id}} took "
            "'summary' for a task id. Make the task routes match numbers only, so this is a 405."
        )
        assert response.headers["allow"] == "GET", f"Allow should list GET only, got {response.headers['allow']}"


def test_the_summary_needs_a_token(client: TestClient, user: Headers) -> None:
    summary(client, user)
    response = client.get("/tasks/summary")
    assert response.status_code == 401, f"Without a token GET /tasks/summary should be 401, got {response.status_code}"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_summary_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"].get("/tasks/summary", {}).get("get")
    assert operation is not None, "GET /tasks/summary is not in the OpenAPI schema: add the route in main.py"
    assert "401" in operation["responses"], "Document that GET /tasks/summary answers 401 without a token"
    content = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert "$ref" in content, "Give the route a response model (a return annotation), so its 200 is documented"
    model = schema["components"]["schemas"][content["$ref"].rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {"by_status", "overdue"}, f"The model's fields: {set(model['properties'])}"
    assert set(model.get("required", [])) == {"by_status", "overdue"}, "Both fields are in every summary: required"
    assert model["properties"]["overdue"]["type"] == "integer"
    assert model["properties"]["by_status"]["type"] == "object"
