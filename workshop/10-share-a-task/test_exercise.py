"""Exercise 10: the owner shares a task, read-only, with another user (POST /tasks/{id}/shares).

Run with `make exercise N=10`. Every check runs once per backend: memory, SQLite, and
PostgreSQL when TEST_POSTGRES_URL is set.
"""

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import Headers, MakeUser

MakeTask = Callable[..., dict[str, object]]
PROBLEM = "application/problem+json"


def new_email() -> str:
    return f"reader-{uuid.uuid4().hex[:8]}@example.com"


def share(client: TestClient, headers: Headers, task_id: object, email: object) -> Response:
    return client.post(f"/tasks/{task_id}/shares", json={"email": email}, headers=headers)


def assert_shared(response: Response) -> None:
    """A 201 from the share route, or a message saying what is missing."""
    missing = response.status_code == 404 and response.json()["detail"] == "Not Found"
    assert not missing, "POST /tasks/{task_id}/shares does not exist yet (404 Not Found): add the route in main.py"
    assert response.status_code == 201, f"Sharing answered {response.status_code}, not 201: {response.json()}"


def shared_task(client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask) -> tuple[str, Headers]:
    """A task of `user`, shared with a new user: its URL and the reader's auth headers."""
    email = new_email()
    reader = make_user(email)
    task = make_task(title="Shared", priority=3, tags=["team"])
    assert_shared(share(client, user, task["id"], email))
    return f"/tasks/{task['id']}", reader


def test_the_reader_can_read_a_shared_task(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    email = new_email()
    reader = make_user(email)
    task = make_task(title="Shared", description="For your eyes")
    response = share(client, user, task["id"], email.upper())
    assert_shared(response)
    assert response.json() == {"task_id": task["id"], "email": email}, (
        "The 201 body is the share: the task's id and the reader's email, lower-cased as at registration"
    )
    read = client.get(f"/tasks/{task['id']}", headers=reader)
    assert read.status_code == 200, f"The reader's GET of a task shared with them answered {read.status_code}"
    assert read.json() == client.get(f"/tasks/{task['id']}", headers=user).json(), "The reader sees the task as is"
    assert read.headers["etag"] == client.get(f"/tasks/{task['id']}", headers=user).headers["etag"]


def test_the_reader_sees_the_owners_changes(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    url, reader = shared_task(client, user, make_user, make_task)
    assert client.patch(url, json={"title": "Renamed by the owner"}, headers=user).status_code == 200
    assert client.get(url, headers=reader).json()["title"] == "Renamed by the owner"
    assert client.delete(url, headers=user).status_code == 204
    assert client.get(url, headers=reader).status_code == 404, "A deleted task is gone for its readers too"


def test_the_reader_cannot_change_delete_or_reshare_it(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    url, reader = shared_task(client, user, make_user, make_task)
    before = client.get(url, headers=user)
    attempts = [("PUT", url, {"title": "Taken over"}), ("PATCH", url, {"status": "completed"}), ("DELETE", url, None)]
    attempts.append(("POST", f"{url}/shares", {"email": new_email()}))
    for method, path, body in attempts:
        response = client.request(method, path, json=body, headers=reader)
        assert response.status_code == 403, (
            f"{method} {path} by the reader answered {response.status_code}: a shared task is read-only, so "
            "its reader gets 403 Forbidden (they know it exists: they can read it)"
        )
        assert response.headers["content-type"] == PROBLEM, "The 403 should be a problem, like every error"
    after = client.get(url, headers=user)
    assert (after.json(), after.headers["etag"]) == (before.json(), before.headers["etag"]), "The task changed"


def test_a_third_user_still_gets_404(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    url, _ = shared_task(client, user, make_user, make_task)
    stranger = make_user()
    for method, path, body in [("GET", url, None), ("PATCH", url, {"priority": 1}), ("DELETE", url, None)]:
        response = client.request(method, path, json=body, headers=stranger)
        assert response.status_code == 404, f"{method} by a user it is not shared with must be a 404"
    assert share(client, stranger, url.rsplit("/", 1)[1], new_email()).status_code == 404


def test_only_the_shared_task_is_readable(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    unshared = make_task(title="Private")
    url, reader = shared_task(client, user, make_user, make_task)
    assert client.get(url, headers=reader).status_code == 200
    response = client.get(f"/tasks/{unshared['id']}", headers=reader)
    assert response.status_code == 404, "Sharing one task shared all of them: the owner's other tasks must stay 404"


def test_an_unknown_email_is_a_422_for_the_owner_only(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    task = make_task()
    unknown = share(client, user, task["id"], "nobody-at-all@example.com")
    missing = unknown.status_code == 404 and unknown.json()["detail"] == "Not Found"
    assert not missing, "POST /tasks/{task_id}/shares does not exist yet (404 Not Found): add the route in main.py"
    assert unknown.status_code == 422, f"Sharing with an email no user has answered {unknown.status_code}, not 422"
    errors = unknown.json().get("errors") or []
    assert [error["loc"] for error in errors] == [["body", "email"]], f"The 422 should blame body.email: {errors}"
    stranger = make_user()
    for email in ("nobody-at-all@example.com", new_email()):
        response = share(client, stranger, task["id"], email)
        assert response.status_code == 404, (
            f"A stranger sharing your task answered {response.status_code}: check the task before the email, so "
            "a stranger gets the 404 of a missing task and learns nothing about emails"
        )
    assert share(client, user, 999_999, "nobody-at-all@example.com").status_code == 404, "A missing task is a 404"


def test_sharing_twice_is_harmless(client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask) -> None:
    email = new_email()
    reader = make_user(email)
    task = make_task()
    for _ in range(2):
        assert_shared(share(client, user, task["id"], email))
    assert client.get(f"/tasks/{task['id']}", headers=reader).status_code == 200


def test_bad_input_is_a_422_and_a_token_is_needed(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task_id = make_task()["id"]
    bodies: list[Any] = [{"email": "not-an-email"}, {}, {"email": new_email(), "can_edit": True}, ["x@example.com"]]
    for body in bodies:
        response = client.post(f"/tasks/{task_id}/shares", json=body, headers=user)
        assert response.status_code == 422, (
            f"POST /tasks/{{task_id}}/shares with {body} answered {response.status_code}, not 422"
        )
    response = share(client, {}, task_id, new_email())
    assert response.status_code == 401, f"Sharing without a token should be 401, got {response.status_code}"


def test_sharing_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    operation = paths.get("/tasks/{task_id}/shares", {}).get("post")
    assert operation is not None, "POST /tasks/{task_id}/shares is not in the OpenAPI schema: add the route"
    assert {"201", "401", "403", "404", "422"} <= set(operation["responses"]), "Document 201, 401, 403, 404, 422"
    body = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert "$ref" in body, "Give the route a response model, so its 201 is documented"
    model = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {"task_id", "email"}, f"The share's fields: {set(model['properties'])}"
    for method in ("put", "patch", "delete"):
        assert "403" in paths["/tasks/{task_id}"][method]["responses"], (
            f"Document the reader's 403 on {method.upper()} /tasks/{{task_id}} in main.py"
        )
