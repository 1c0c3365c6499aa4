"""Exercise 06: every write to a task is recorded after its response, and read back in order.

Run: make exercise N=06 (or .venv/bin/pytest workshop/06-background-task/test_exercise.py).
Each check runs once per backend: memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is set.
"""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from tests.conftest import Headers, MakeUser

MakeTask = Callable[..., dict[str, object]]
Entry = dict[str, Any]
# What a new task's "created" entry holds: every field a client sets, defaults included.
CREATED: dict[str, Any] = {
    "title": "Write the report",
    "description": None,
    "status": "pending",
    "priority": 3,
    "due_date": "2026-12-01",
    "tags": ["docs"],
}
# A PUT is a full replace: the fields it leaves out take their defaults, and it records them all.
REPLACED: dict[str, Any] = {
    "title": "Rewrite it",
    "description": "From scratch",
    "status": "pending",
    "priority": 1,
    "due_date": None,
    "tags": [],
}


def history(client: TestClient, task_id: object, headers: Headers) -> list[Entry]:
    response = client.get(f"/tasks/{task_id}/history", headers=headers)
    detail = response.json().get("detail") if response.status_code != 200 else None
    assert response.status_code == 200, (
        f"GET /tasks/{task_id}/history answered {response.status_code} ({detail!r}), not 200 with the task's entries: "
        "add the route to the `tasks` router in main.py"
    )
    entries = response.json()
    assert isinstance(entries, list), f"the history should be a JSON list of entries, got {entries!r}"
    return entries


def assert_entry(entry: Entry, action: str, changes: dict[str, Any], task: dict[str, Any]) -> None:
    """One entry: its action, the fields the write set, and `at` = the task's updated_at after the write."""
    assert isinstance(entry, dict) and {"at", "action", "changes"} <= set(entry), (
        f"each entry is an object with at least `at`, `action` and `changes`, got {entry!r}"
    )
    assert entry["action"] == action, f"expected a {action!r} entry, got {entry['action']!r}: {entry}"
    assert entry["changes"] == changes, f"the {action!r} entry's changes should be {changes}, got {entry['changes']}"
    at = datetime.fromisoformat(entry["at"])
    assert at.tzinfo is not None, f"`at` should carry its time zone (UTC), like updated_at: {entry['at']!r}"
    assert at == datetime.fromisoformat(task["updated_at"]), (
        f"`at` should be when the write happened, the task's updated_at after it ({task['updated_at']}), "
        f"not {entry['at']}: the background task runs later, so take the time from the task, not the clock"
    )


def assert_not_found(response: Any, what: str) -> None:
    assert response.status_code == 404, f"{what}: expected 404, got {response.status_code}: {response.text}"


def test_a_new_task_starts_its_history_with_created(client: TestClient, user: Headers) -> None:
    task = client.post("/tasks", json=CREATED, headers=user).json()
    entries = history(client, task["id"], user)
    assert len(entries) == 1, f"a new task has exactly one entry, 'created'; got {entries}"
    assert_entry(entries[0], "created", CREATED, task)


def test_each_change_is_added_oldest_first(client: TestClient, user: Headers) -> None:
    created = client.post("/tasks", json=CREATED, headers=user).json()
    path = f"/tasks/{created['id']}"
    patched = client.patch(path, json={"status": "completed", "title": "  The report  "}, headers=user).json()
    replaced = client.put(path, json={"title": "Rewrite it", "description": "From scratch"}, headers=user).json()
    entries = history(client, created["id"], user)
    assert len(entries) == 3, f"after POST, PATCH and PUT the history has 3 entries, oldest first; got {entries}"
    assert_entry(entries[0], "created", CREATED, created)
    # A PATCH records only the fields it sent, as stored (the title stripped); a PUT sets them all.
    assert_entry(entries[1], "updated", {"status": "completed", "title": "The report"}, patched)
    assert_entry(entries[2], "updated", REPLACED, replaced)


async def asgi_get(app: FastAPI, path: str, headers: Headers) -> tuple[int, Any]:
    """A GET straight to the ASGI app, from inside another request (TestClient cannot nest)."""
    raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, json.loads(b"".join(message.get("body", b"") for message in sent))


def test_the_entry_is_written_after_the_response(app: FastAPI, client: TestClient, user: Headers) -> None:
    """At the moment a write's response has been sent, its entry is not in the history yet."""
    seen: list[tuple[int, Any]] = []

    async def looking_as_the_response_ends(scope: Scope, receive: Receive, send: Send) -> None:
        task_path: str = scope["path"]

        async def send_then_look(message: Message) -> None:
            nonlocal task_path
            await send(message)
            if message["type"] == "http.response.start":
                task_path = dict(message["headers"]).get(b"location", task_path.encode()).decode()
            elif not message.get("more_body", False):  # the response's last byte has gone out
                seen.append(await asyncio.create_task(asgi_get(app, f"{task_path}/history", user)))

        await app(scope, receive, send_then_look)

    spied = TestClient(looking_as_the_response_ends)
    task = spied.post("/tasks", json={"title": "Watch me"}, headers=user).json()
    spied.patch(f"/tasks/{task['id']}", json={"priority": 2}, headers=user)
    assert len(history(client, task["id"], user)) == 2, "after a POST and a PATCH the history has 2 entries"
    assert [status for status, _ in seen] == [200, 200], f"the history, read as each response ended: {seen}"
    assert seen[0][1] == [], (
        "the history already held the 'created' entry when POST /tasks sent its response: "
        "hand the write to FastAPI's BackgroundTasks, so it runs after the response"
    )
    assert len(seen[1][1]) == 1, (
        "the history already held the 'updated' entry when PATCH sent its response: record it with BackgroundTasks too"
    )


def test_a_refused_write_adds_no_entry(client: TestClient, user: Headers, make_user: MakeUser) -> None:
    task = client.post("/tasks", json={"title": "Mine"}, headers=user).json()
    path = f"/tasks/{task['id']}"
    assert client.patch(path, json={"priority": 9}, headers=user).status_code == 422
    assert client.patch(path, json={"priority": 2}, headers={**user, "If-Match": '"1-99"'}).status_code == 412
    assert_not_found(client.patch(path, json={"priority": 2}, headers=make_user()), "another user's PATCH")
    entries = history(client, task["id"], user)
    assert [entry["action"] for entry in entries] == ["created"], (
        f"a write answered 422, 412 or 404 changed nothing, so it records nothing; got {entries}"
    )


def test_a_replayed_creation_adds_no_entry(client: TestClient, user: Headers) -> None:
    """A retry with the same Idempotency-Key returns the original task and creates nothing."""
    headers = {**user, "Idempotency-Key": "create-once"}
    first = client.post("/tasks", json={"title": "Once"}, headers=headers).json()
    again = client.post("/tasks", json={"title": "Once"}, headers=headers).json()
    assert again["id"] == first["id"]
    entries = history(client, first["id"], user)
    assert [entry["action"] for entry in entries] == ["created"], (
        "a replayed POST returns the task as it was created (its version is still 1): it must not record "
        f"a second 'created' entry; got {entries}"
    )


def test_only_the_owner_or_an_admin_reads_the_history(
    client: TestClient, user: Headers, make_user: MakeUser, admin: Headers
) -> None:
    task = client.post("/tasks", json={"title": "Private"}, headers=user).json()
    assert len(history(client, task["id"], user)) == 1
    theirs = client.get(f"/tasks/{task['id']}/history", headers=make_user())
    assert_not_found(theirs, "another user's GET of this history (answered like a missing task, never 403)")
    assert theirs.json()["detail"] == f"Task {task['id']} not found", f"the same 404 as a missing task: {theirs.text}"
    entries = history(client, task["id"], admin)
    assert [entry["action"] for entry in entries] == ["created"], f"an admin reads anyone's history; got {entries}"


def test_a_missing_task_a_bad_id_and_no_token_are_refused(client: TestClient, user: Headers) -> None:
    history(client, client.post("/tasks", json={"title": "Exists"}, headers=user).json()["id"], user)
    missing = client.get("/tasks/999999/history", headers=user)
    assert_not_found(missing, "the history of a task that does not exist")
    assert missing.json()["detail"] == "Task 999999 not found", f"the 404 is the missing task's: {missing.text}"
    for bad in ("0", "abc"):
        response = client.get(f"/tasks/{bad}/history", headers=user)
        assert response.status_code == 422, f"task id {bad!r} is invalid like anywhere else (422): {response.text}"
    anonymous = client.get("/tasks/1/history")
    assert anonymous.status_code == 401, f"without a token the answer is 401, got {anonymous.status_code}"


def test_a_deleted_task_takes_its_history_with_it(client: TestClient, user: Headers, admin: Headers) -> None:
    task = client.post("/tasks", json={"title": "Short-lived"}, headers=user).json()
    client.patch(f"/tasks/{task['id']}", json={"priority": 5}, headers=user)
    assert len(history(client, task["id"], user)) == 2
    assert client.delete(f"/tasks/{task['id']}", headers=user).status_code == 204
    assert_not_found(client.get(f"/tasks/{task['id']}/history", headers=user), "the history of a deleted task")
    # SQLite may hand a deleted task's id to the next one: the old entries must be gone with it.
    for attempt in ("after DELETE /tasks/{id}", "after the admin's DELETE /admin/tasks"):
        fresh = client.post("/tasks", json={"title": "Brand new"}, headers=user).json()
        entries = history(client, fresh["id"], user)
        assert len(entries) == 1, f"a new task {attempt} starts with one entry; got {entries}: delete the old ones"
        assert client.delete("/admin/tasks", headers=admin).status_code == 200


def test_the_history_route_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"].get("/tasks/{task_id}/history", {}).get("get")
    assert operation is not None, "GET /tasks/{task_id}/history is not in /openapi.json: add the route in main.py"
    listed = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed.get("type") == "array" and "$ref" in listed.get("items", {}), (
        f"the 200 answer should be a list of a response model (return list[YourEntryModel]), got {listed}"
    )
    entry = schema["components"]["schemas"][listed["items"]["$ref"].rsplit("/", 1)[-1]]
    assert {"at", "action", "changes"} <= set(entry["properties"]), f"the entry model's fields: {entry['properties']}"
    assert "404" in operation["responses"], "document the 404 (responses=problems(404)), as read_task does"
