"""Tasks CRUD over HTTP on every backend: input rules, PUT/PATCH/DELETE semantics, ownership, admin."""

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import Headers, MakeTask, MakeUser, assert_invalid, assert_problem

# The contract's fields are in every answer (a field added to the models joins them); what
# storage keeps for itself never is.
TASK_KEYS = {
    "id",
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "tags",
    "owner_id",
    "created_at",
    "updated_at",
}
INTERNAL_KEYS = {"version", "title_key", "description_key", "password_hash", "token_key"}
# A task with every field set, so a PUT or PATCH visibly changes or resets each one.
FULL = {
    "title": "Full task",
    "description": "Every field set",
    "status": "in_progress",
    "priority": 4,
    "due_date": "2026-12-01",
    "tags": ["alpha", "beta"],
}
DEFAULTS: dict[str, Any] = {"description": None, "status": "pending", "priority": 1, "due_date": None, "tags": []}


def parse_utc(timestamp: str) -> datetime:
    """A contract timestamp: ISO 8601 with an explicit UTC offset (`Z` or `+00:00`)."""
    assert timestamp.endswith(("Z", "+00:00")), timestamp
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def count_tasks(client: TestClient, headers: Headers) -> int:
    response = client.get("/tasks", headers=headers)
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def read(client: TestClient, headers: Headers, task_id: object) -> Response:
    response = client.get(f"/tasks/{task_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response


# --- create ------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_defaults(client: TestClient, user: Headers) -> None:
    response = client.post("/tasks", json={"title": "Write API tutorial"}, headers=user)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    task = response.json()
    assert set(task) >= TASK_KEYS and not set(task) & INTERNAL_KEYS
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert re.fullmatch(r'"[^"]+"', response.headers["etag"])  # strong: no W/ prefix
    assert task["title"] == "Write API tutorial"
    assert {key: task[key] for key in DEFAULTS} == DEFAULTS
    assert task["owner_id"] == client.get("/users/me", headers=user).json()["id"]
    assert parse_utc(task["updated_at"]) >= parse_utc(task["created_at"])

    again = read(client, user, task["id"])
    assert again.json() == task
    assert again.headers["etag"] == response.headers["etag"]


def test_create_stores_every_field(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task = make_task(**FULL)
    assert {key: task[key] for key in FULL} == FULL
    assert read(client, user, task["id"]).json() == task


def test_title_is_required_on_create_and_replace(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task = make_task()
    assert_invalid(client.post("/tasks", json={"priority": 2}, headers=user), ["body", "title"])
    assert_invalid(client.put(f"/tasks/{task['id']}", json={"priority": 2}, headers=user), ["body", "title"])
    assert read(client, user, task["id"]).json() == task
    assert count_tasks(client, user) == 1


# --- input rules: the same on POST, PUT and PATCH ----------------------------

VALID = [
    pytest.param({"title": "\t Write tests \n"}, {"title": "Write tests"}, id="title-stripped"),
    pytest.param({"title": "x" * 200}, {"title": "x" * 200}, id="title-200"),
    pytest.param({"title": f"  {'y' * 200}  "}, {"title": "y" * 200}, id="title-200-after-strip"),
    pytest.param({"title": "Été à Zürich ✓"}, {"title": "Été à Zürich ✓"}, id="title-non-ascii"),
    pytest.param({"title": "İ" * 200}, {"title": "İ" * 200}, id="title-200-lengthening-when-lowered"),
    pytest.param({"description": "d" * 2000}, {"description": "d" * 2000}, id="description-2000"),
    pytest.param({"description": ""}, {"description": ""}, id="description-empty"),
    pytest.param({"description": None}, {"description": None}, id="description-null"),
    pytest.param({"status": "in_progress"}, {"status": "in_progress"}, id="status-in_progress"),
    pytest.param({"status": "completed"}, {"status": "completed"}, id="status-completed"),
    pytest.param({"status": "cancelled"}, {"status": "cancelled"}, id="status-cancelled"),
    pytest.param({"priority": 1}, {"priority": 1}, id="priority-1"),
    pytest.param({"priority": 5}, {"priority": 5}, id="priority-5"),
    pytest.param({"due_date": "2028-02-29"}, {"due_date": "2028-02-29"}, id="due_date-leap-day"),
    pytest.param({"due_date": None}, {"due_date": None}, id="due_date-null"),
    pytest.param({"tags": []}, {"tags": []}, id="tags-empty"),
    pytest.param({"tags": [" Docs ", "WRITING"]}, {"tags": ["docs", "writing"]}, id="tags-stripped-lowered"),
    pytest.param({"tags": ["b", "a", "B", " a "]}, {"tags": ["b", "a"]}, id="tags-deduplicated-in-order"),
    pytest.param({"tags": ["ÉTÉ", "été"]}, {"tags": ["été"]}, id="tags-non-ascii-lowered"),
    pytest.param({"tags": ["x" * 30]}, {"tags": ["x" * 30]}, id="tag-30"),
    pytest.param({"tags": [f"  {'Y' * 30}  "]}, {"tags": ["y" * 30]}, id="tag-30-after-strip"),
    pytest.param(
        {"tags": [f"t{i}" for i in range(10)] + ["T0", " t9 "]},
        {"tags": [f"t{i}" for i in range(10)]},
        id="tags-12-collapsing-to-10",
    ),
]


@pytest.mark.parametrize(("fields", "stored"), VALID)
def test_valid_input_is_stored_normalised(
    client: TestClient, user: Headers, make_task: MakeTask, fields: dict[str, Any], stored: dict[str, Any]
) -> None:
    """Each rule holds on create, full replace and partial update alike, and reads back the same."""
    created = client.post("/tasks", json={"title": "Valid", **fields}, headers=user)
    assert created.status_code == 201, created.text
    replaced = client.put(f"/tasks/{make_task(**FULL)['id']}", json={"title": "Valid", **fields}, headers=user)
    patched = client.patch(f"/tasks/{make_task(**FULL)['id']}", json=fields, headers=user)
    for response in (created, replaced, patched):
        assert response.status_code in (200, 201), response.text
        task = response.json()
        assert {key: task[key] for key in stored} == stored
        assert read(client, user, task["id"]).json() == task


INVALID = [
    pytest.param({"title": ""}, ["body", "title"], id="title-empty"),
    pytest.param({"title": "\t\n "}, ["body", "title"], id="title-whitespace"),
    pytest.param({"title": "x" * 201}, ["body", "title"], id="title-201"),
    pytest.param({"title": 5}, ["body", "title"], id="title-number"),
    pytest.param({"title": None}, ["body", "title"], id="title-null"),
    pytest.param({"description": "d" * 2001}, ["body", "description"], id="description-2001"),
    pytest.param({"description": 5}, ["body", "description"], id="description-number"),
    pytest.param({"status": "bogus"}, ["body", "status"], id="status-bogus"),
    pytest.param({"status": "PENDING"}, ["body", "status"], id="status-upper-case"),
    pytest.param({"status": None}, ["body", "status"], id="status-null"),
    pytest.param({"priority": 0}, ["body", "priority"], id="priority-0"),
    pytest.param({"priority": 6}, ["body", "priority"], id="priority-6"),
    pytest.param({"priority": "3"}, ["body", "priority"], id="priority-string"),
    pytest.param({"priority": 3.5}, ["body", "priority"], id="priority-float"),
    pytest.param({"priority": True}, ["body", "priority"], id="priority-bool"),
    pytest.param({"priority": None}, ["body", "priority"], id="priority-null"),
    pytest.param({"due_date": "2026-13-01"}, ["body", "due_date"], id="due_date-month-13"),
    pytest.param({"due_date": "2026-02-30"}, ["body", "due_date"], id="due_date-feb-30"),
    pytest.param({"due_date": "tomorrow"}, ["body", "due_date"], id="due_date-word"),
    pytest.param({"due_date": "01/12/2026"}, ["body", "due_date"], id="due_date-slashes"),
    pytest.param({"due_date": ""}, ["body", "due_date"], id="due_date-empty"),
    pytest.param({"due_date": 0}, ["body", "due_date"], id="due_date-zero"),
    pytest.param({"tags": [f"t{i}" for i in range(11)]}, ["body", "tags"], id="tags-11-distinct"),
    pytest.param({"tags": [""]}, ["body", "tags"], id="tag-empty"),
    pytest.param({"tags": ["   "]}, ["body", "tags"], id="tag-spaces"),
    pytest.param({"tags": ["x" * 31]}, ["body", "tags"], id="tag-31"),
    pytest.param({"tags": "docs"}, ["body", "tags"], id="tags-string"),
    pytest.param({"tags": [1]}, ["body", "tags"], id="tag-number"),
    pytest.param({"tags": None}, ["body", "tags"], id="tags-null"),
    pytest.param({"id": 99}, ["body", "id"], id="id"),
    pytest.param({"owner_id": 1}, ["body", "owner_id"], id="owner_id"),
    pytest.param({"created_at": "2026-01-01T00:00:00Z"}, ["body", "created_at"], id="created_at"),
    pytest.param({"updated_at": "2026-01-01T00:00:00Z"}, ["body", "updated_at"], id="updated_at"),
    pytest.param({"version": 7}, ["body", "version"], id="version"),
    pytest.param({"foo": "bar"}, ["body", "foo"], id="unknown-field"),
]


@pytest.mark.parametrize(("fields", "loc"), INVALID)
def test_invalid_input_is_422_on_every_write(
    client: TestClient, user: Headers, make_task: MakeTask, fields: dict[str, Any], loc: list[str | int]
) -> None:
    """POST, PUT and PATCH share the rules; a rejected write creates or changes nothing."""
    task = make_task(**FULL)
    assert_invalid(client.post("/tasks", json={"title": "Valid", **fields}, headers=user), loc)
    assert_invalid(client.put(f"/tasks/{task['id']}", json={"title": "Valid", **fields}, headers=user), loc)
    assert_invalid(client.patch(f"/tasks/{task['id']}", json=fields, headers=user), loc)
    assert read(client, user, task["id"]).json() == task
    assert count_tasks(client, user) == 1


@pytest.mark.parametrize("body", ["[]", '["title"]', '"Buy milk"', "42", "true", "null"])
def test_body_that_is_not_an_object_is_422(client: TestClient, user: Headers, make_task: MakeTask, body: str) -> None:
    task = make_task()
    json_content = {**user, "Content-Type": "application/json"}
    for method, path in (("POST", "/tasks"), ("PUT", f"/tasks/{task['id']}"), ("PATCH", f"/tasks/{task['id']}")):
        assert_problem(client.request(method, path, content=body, headers=json_content), 422)
    assert read(client, user, task["id"]).json() == task
    assert count_tasks(client, user) == 1


def test_malformed_json_is_rejected_not_500(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task = make_task()
    json_content = {**user, "Content-Type": "application/json"}
    for method, path in (("POST", "/tasks"), ("PUT", f"/tasks/{task['id']}"), ("PATCH", f"/tasks/{task['id']}")):
        response = client.request(method, path, content='{"title": "unterminated', headers=json_content)
        assert_problem(response, 422)
    assert count_tasks(client, user) == 1


# --- read, replace, update, delete -------------------------------------------


def test_get_missing_task_is_404_problem(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    make_task()
    body = assert_problem(client.get("/tasks/999999", headers=user), 404)
    assert "999999" in body["detail"]


@pytest.mark.parametrize("task_id", ["abc", "1.5", "0", "-1", "2147483648", "99999999999999999999999", "1e3"])
def test_unusable_task_id_is_404_or_422_never_500(
    client: TestClient, user: Headers, make_task: MakeTask, task_id: str
) -> None:
    make_task()
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = None if method in ("GET", "DELETE") else {"title": "Valid"}
        response = client.request(method, f"/tasks/{task_id}", json=body, headers=user)
        assert response.status_code in (404, 422), (method, response.text)
        assert_problem(response, response.status_code)
    assert count_tasks(client, user) == 1


def test_put_replaces_the_whole_task(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    """Fields left out of a PUT take their defaults; identity and creation data stay."""
    original = make_task(**FULL)
    old_etag = read(client, user, original["id"]).headers["etag"]
    response = client.put(f"/tasks/{original['id']}", json={"title": "  Replaced "}, headers=user)
    assert response.status_code == 200, response.text
    task = response.json()
    assert set(task) >= TASK_KEYS and not set(task) & INTERNAL_KEYS
    assert task == {
        **original,
        **DEFAULTS,
        "title": "Replaced",
        "updated_at": task["updated_at"],
    }
    assert parse_utc(task["updated_at"]) > parse_utc(original["updated_at"])
    assert response.headers["etag"] not in (None, old_etag)
    again = read(client, user, task["id"])
    assert again.json() == task
    assert again.headers["etag"] == response.headers["etag"]


def test_patch_changes_only_the_fields_sent(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    original = make_task(**FULL)
    response = client.patch(f"/tasks/{original['id']}", json={"status": "completed"}, headers=user)
    assert response.status_code == 200, response.text
    assert response.json() == {**original, "status": "completed", "updated_at": response.json()["updated_at"]}

    response = client.patch(f"/tasks/{original['id']}", json={"tags": [" New "], "priority": 2}, headers=user)
    assert response.status_code == 200, response.text
    expected = {**original, "status": "completed", "tags": ["new"], "priority": 2}
    assert response.json() == {**expected, "updated_at": response.json()["updated_at"]}
    assert read(client, user, original["id"]).json() == response.json()


@pytest.mark.parametrize("field", ["description", "due_date"])
def test_patch_null_clears_an_optional_field(
    client: TestClient, user: Headers, make_task: MakeTask, field: str
) -> None:
    original = make_task(**FULL)
    response = client.patch(f"/tasks/{original['id']}", json={field: None}, headers=user)
    assert response.status_code == 200, response.text
    assert response.json() == {**original, field: None, "updated_at": response.json()["updated_at"]}
    assert read(client, user, original["id"]).json()[field] is None


def test_empty_patch_is_422(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task = make_task(**FULL)
    assert_invalid(client.patch(f"/tasks/{task['id']}", json={}, headers=user), ["body"])
    assert read(client, user, task["id"]).json() == task


def test_every_modification_moves_updated_at_and_etag(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    """Even a PATCH that repeats current values is a modification: new updated_at, new ETag."""
    task = make_task(**FULL)
    etags = [read(client, user, task["id"]).headers["etag"]]
    stamps = [parse_utc(task["updated_at"])]
    writes: list[tuple[str, dict[str, Any]]] = [
        ("PUT", {"title": "Replaced"}),
        ("PATCH", {"priority": 3}),
        ("PATCH", {"priority": 3}),
        ("PUT", FULL),
    ]
    for method, body in writes:
        response = client.request(method, f"/tasks/{task['id']}", json=body, headers=user)
        assert response.status_code == 200, response.text
        changed = response.json()
        assert (changed["id"], changed["owner_id"], changed["created_at"]) == (
            task["id"],
            task["owner_id"],
            task["created_at"],
        )
        stamps.append(parse_utc(changed["updated_at"]))
        etags.append(response.headers["etag"])
        assert read(client, user, task["id"]).headers["etag"] == etags[-1]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert len(set(etags)) == len(etags)


def test_delete_answers_204_then_the_task_is_gone(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task, kept = make_task(), make_task(title="Kept")
    response = client.delete(f"/tasks/{task['id']}", headers=user)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"/tasks/{task['id']}", headers=user), 404)
    assert_problem(client.delete(f"/tasks/{task['id']}", headers=user), 404)
    assert_problem(client.put(f"/tasks/{task['id']}", json={"title": "Back"}, headers=user), 404)
    assert_problem(client.patch(f"/tasks/{task['id']}", json={"title": "Back"}, headers=user), 404)
    listing = client.get("/tasks", headers=user).json()
    assert [item["id"] for item in listing["items"]] == [kept["id"]]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_task_routes_need_a_token(client: TestClient, make_task: MakeTask, method: str) -> None:
    task = make_task()
    path = "/tasks" if method == "POST" else f"/tasks/{task['id']}"
    body = None if method in ("GET", "DELETE") else {"title": "Valid"}
    response = client.request(method, path, json=body)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# --- ownership and admin -----------------------------------------------------

OTHER_USERS_REQUESTS: list[tuple[str, dict[str, Any] | None]] = [
    ("GET", None),
    ("PUT", {"title": "Hijacked"}),
    ("PATCH", {"status": "cancelled"}),
    ("DELETE", None),
]


def test_another_users_task_answers_exactly_like_a_missing_one(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    """B's requests on A's task get the very answers they get once the task really is gone."""
    mine = make_task(**FULL)
    etag = read(client, user, mine["id"]).headers["etag"]
    other = make_user()

    def attempts() -> list[tuple[int, str, dict[str, Any]]]:
        answers = []
        for method, body in OTHER_USERS_REQUESTS:
            response = client.request(method, f"/tasks/{mine['id']}", json=body, headers=other)
            problem = assert_problem(response, 404)
            problem.pop("request_id")
            answers.append((response.status_code, response.headers["content-type"], problem))
        return answers

    while_it_exists = attempts()
    untouched = read(client, user, mine["id"])
    assert untouched.json() == mine
    assert untouched.headers["etag"] == etag

    assert client.delete(f"/tasks/{mine['id']}", headers=user).status_code == 204
    assert attempts() == while_it_exists


def test_listing_shows_only_your_own_tasks(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    other = make_user()
    mine = {make_task(title="Shared word")["id"], make_task(title="Shared word too")["id"]}
    theirs = {make_task(other, title="Shared word")["id"]}
    for headers, expected in ((user, mine), (other, theirs)):
        for params in ({}, {"q": "shared"}, {"sort_by": "title", "order": "asc"}):
            page = client.get("/tasks", params=params, headers=headers)
            assert page.status_code == 200, page.text
            assert {item["id"] for item in page.json()["items"]} == expected
            assert page.json()["total"] == len(expected)
            assert page.headers["x-total-count"] == str(len(expected))


def test_admin_reads_changes_lists_and_deletes_anyones_task(
    client: TestClient, user: Headers, make_user: MakeUser, admin: Headers, make_task: MakeTask
) -> None:
    other = make_user()
    task = make_task(**FULL)
    theirs = make_task(other, title="Theirs")
    assert read(client, admin, task["id"]).json() == task

    patched = client.patch(f"/tasks/{task['id']}", json={"status": "completed"}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner_id"] == task["owner_id"]
    assert read(client, user, task["id"]).json()["status"] == "completed"

    replaced = client.put(f"/tasks/{task['id']}", json={"title": "Fixed by admin"}, headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["owner_id"] == task["owner_id"]
    assert read(client, user, task["id"]).json() == replaced.json()

    own = client.post("/tasks", json={"title": "Admin's own"}, headers=admin).json()
    listing = client.get("/tasks", headers=admin).json()
    assert {item["id"] for item in listing["items"]} == {task["id"], theirs["id"], own["id"]}
    assert listing["total"] == 3
    assert count_tasks(client, user) == 1  # the admin's own task is not shown to others

    assert client.delete(f"/tasks/{theirs['id']}", headers=admin).status_code == 204
    assert_problem(client.get(f"/tasks/{theirs['id']}", headers=other), 404)
    assert count_tasks(client, other) == 0
