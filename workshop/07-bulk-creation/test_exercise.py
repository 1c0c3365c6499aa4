"""Exercise 07: POST /tasks/bulk creates up to 100 tasks in one request, all of them or none.

Run: make exercise N=07 (or .venv/bin/pytest workshop/07-bulk-creation/test_exercise.py).
Each check runs once per backend: memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is set.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sql_store import SqlStore
from storage import Storage
from tests.conftest import Headers, MakeUser, make_settings, running

BULK = "/tasks/bulk"
REFUSED_TITLE = "The database refuses this one"


def answered(response: Any) -> str:
    """An answer, as a failure message shows it; a 405 means the route does not exist yet."""
    if response.status_code == 405:
        return "405 Method Not Allowed: add the POST /tasks/bulk route to the `tasks` router in main.py"
    return f"{response.status_code}: {response.text}"


def create(client: TestClient, batch: Any, headers: Headers) -> list[dict[str, Any]]:
    response = client.post(BULK, json=batch, headers=headers)
    assert response.status_code == 201, f"POST /tasks/bulk should answer 201 Created, got {answered(response)}"
    created = response.json()
    assert isinstance(created, list), f"the answer is the list of created tasks, got {created!r}"
    return created


def titles(client: TestClient, headers: Headers) -> list[str]:
    """The caller's stored tasks, oldest first."""
    page = client.get("/tasks", params={"sort_by": "created_at", "order": "asc", "limit": 100}, headers=headers)
    return [task["title"] for task in page.json()["items"]]


def assert_refused(response: Any, loc: list[str | int], why: str) -> None:
    """A 422 whose `errors` point at `loc`, the failing item's field."""
    assert response.status_code == 422, f"{why}: expected 422, got {answered(response)}"
    errors = response.json()["errors"]
    assert any(error["loc"][: len(loc)] == loc for error in errors), f"{why}: no error at {loc} in {errors}"


def test_a_batch_creates_every_task_in_order(client: TestClient, user: Headers, make_user: MakeUser) -> None:
    batch = [
        {"title": "Plan", "priority": 4, "due_date": "2026-12-24", "tags": ["work"]},
        {"title": "  Padded  ", "tags": ["Home", "home"]},
        {"title": "Done already", "status": "completed", "description": "Yes"},
    ]
    created = create(client, batch, user)
    assert [task["title"] for task in created] == ["Plan", "Padded", "Done already"], (
        f"one created task per item, in the order sent, validated as POST /tasks does (titles stripped): {created}"
    )
    me = client.get("/users/me", headers=user).json()
    assert {task["owner_id"] for task in created} == {me["id"]}, "every task belongs to the caller"
    assert [task["id"] for task in created] == sorted({task["id"] for task in created}), "new ids, in order"
    assert (created[0]["priority"], created[0]["due_date"], created[1]["tags"]) == (4, "2026-12-24", ["home"])
    assert (created[1]["status"], created[1]["priority"], created[2]["status"]) == ("pending", 1, "completed")
    for task in created:
        stored = client.get(f"/tasks/{task['id']}", headers=user)
        assert stored.status_code == 200 and stored.json() == task, f"GET /tasks/{task['id']} returns what was created"
    assert titles(client, user) == ["Plan", "Padded", "Done already"], "GET /tasks lists the three new tasks"
    assert titles(client, make_user()) == [], "another user sees none of them"


@pytest.mark.parametrize(
    ("bad_item", "loc"),
    [
        ({"description": "no title"}, ["body", 2, "title"]),
        ({"title": "x", "priority": 9}, ["body", 2, "priority"]),
        ({"title": "x", "id": 7}, ["body", 2, "id"]),
        ("just a string", ["body", 2]),
    ],
)
def test_one_invalid_item_refuses_the_whole_batch(
    client: TestClient, user: Headers, bad_item: Any, loc: list[str | int]
) -> None:
    batch = [{"title": "Fine"}, {"title": "Also fine"}, bad_item, {"title": "Never reached"}]
    assert_refused(client.post(BULK, json=batch, headers=user), loc, f"item 2 is {bad_item!r}")
    assert titles(client, user) == [], "a refused batch creates nothing, not even the valid items before the bad one"


def test_a_batch_has_1_to_100_tasks(client: TestClient, user: Headers) -> None:
    hundred = create(client, [{"title": f"Task {n}"} for n in range(100)], user)
    assert len(hundred) == 100, "100 tasks is the largest batch, and it is accepted"
    for batch, why in (([], "an empty list"), ([{"title": f"Task {n}"} for n in range(101)], "101 tasks")):
        response = client.post(BULK, json=batch, headers=user)
        assert_refused(response, ["body"], why)
    assert_refused(client.post(BULK, json={"title": "One task"}, headers=user), ["body"], "an object, not a list")
    assert len(titles(client, user)) == 100, "the refused batches created nothing"


def test_the_body_size_limit_applies(storage: Storage, client: TestClient, user: Headers) -> None:
    """MAX_BODY_BYTES bounds a batch as it bounds any body: here it is set to this batch's size."""
    body = json.dumps([{"title": f"Task {n}"} for n in range(30)])
    json_headers = {**user, "Content-Type": "application/json"}
    with running(make_settings(max_body_bytes=len(body)), storage) as limited:
        accepted = limited.post(BULK, content=body, headers=json_headers)
        assert accepted.status_code == 201, f"a batch of exactly MAX_BODY_BYTES is accepted, got {answered(accepted)}"
        refused = limited.post(BULK, content=body + " ", headers=json_headers)
        assert refused.status_code == 413, f"one byte over MAX_BODY_BYTES is a 413, got {answered(refused)}"
    assert len(titles(client, user)) == 30, "the batch over the limit created nothing"


def test_without_a_token_the_answer_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.post(BULK, json=[{"title": "Anonymous"}], headers=headers)
        token = "a bad token" if headers else "no token"
        assert response.status_code == 401, f"POST /tasks/bulk with {token}: expected 401, got {answered(response)}"


def test_other_methods_on_the_batch_path_are_405(client: TestClient, user: Headers) -> None:
    """/tasks/bulk is not a task: PUT /tasks/bulk must not reach PUT /tasks/{task_id} with id "bulk"."""
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = client.request(method, BULK, json={"title": "x"}, headers=user)
        assert (response.status_code, response.headers.get("Allow")) == (405, "POST"), (
            f"{method} /tasks/bulk should be 405 with `Allow: POST`, got {response.status_code} "
            f"(Allow: {response.headers.get('Allow')}): a 422 means it reached {method} /tasks/{{task_id}} "
            "with task_id 'bulk' (see the last hint)"
        )
    response = client.get("/tasks/abc", headers=user)
    assert response.status_code == 422, f"GET /tasks/abc is still a 422 (an id that is not a number): {response.text}"


@contextmanager
def database_refusing(storage: Storage, title: str) -> Iterator[None]:
    """A trigger that makes the database itself refuse to insert a task with `title`, as a full
    disk or a broken connection would refuse a write: an error that no validation can catch."""
    assert isinstance(storage, SqlStore)
    if storage.kind == "sqlite":
        create = [
            f"CREATE TRIGGER refuse_title BEFORE INSERT ON tasks WHEN NEW.title = '{title}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        drop = ["DROP TRIGGER refuse_title"]
    else:
        create = [
            "CREATE FUNCTION refuse_title() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.title = '{title}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_title BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION refuse_title()",
        ]
        drop = ["DROP TRIGGER refuse_title ON tasks", "DROP FUNCTION refuse_title()"]
    with storage.engine.begin() as connection:
        for statement in create:
            connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        with storage.engine.begin() as connection:
            for statement in drop:
                connection.exec_driver_sql(statement)


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"], indirect=True)
def test_a_storage_failure_halfway_creates_nothing(storage: Storage, client: TestClient, user: Headers) -> None:
    """Memory has no such failure: there one lock around the whole batch is enough."""
    batch = [{"title": "First"}, {"title": "Second"}, {"title": REFUSED_TITLE}, {"title": "Fourth"}]
    with database_refusing(storage, REFUSED_TITLE):
        response = client.post(BULK, json=batch, headers=user)
    assert response.status_code >= 500, f"the database refused item 2: the batch fails (5xx), got {answered(response)}"
    assert titles(client, user) == [], (
        "the database refused item 2, yet the items before it were stored: "
        "create the whole batch in one transaction (one SqlRunner.write), not one per task"
    )


def test_the_batch_route_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"].get(BULK, {}).get("post")
    assert operation is not None, "POST /tasks/bulk is not in /openapi.json: add the route in main.py"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body.get("type") == "array" and body.get("items") == {"$ref": "#/components/schemas/TaskCreate"}, (
        f"the request body should be a list of TaskCreate, got {body}"
    )
    assert (body.get("minItems"), body.get("maxItems")) == (1, 100), f"the schema should say 1-100 items: {body}"
    answer = operation["responses"].get("201", {}).get("content", {}).get("application/json", {}).get("schema", {})
    assert answer.get("type") == "array" and answer.get("items") == {"$ref": "#/components/schemas/Task"}, (
        f"the 201 answer should be a list of Task (status_code=201, returning list[Task]), got {operation['responses']}"
    )
