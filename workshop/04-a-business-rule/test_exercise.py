"""Exercise 04: a cancelled task takes no change (PUT or PATCH) except the one back to pending.

Run with `make exercise N=04`. Every check runs once per backend: memory, SQLite, and
PostgreSQL when TEST_POSTGRES_URL is set.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import Headers, MakeUser

MakeTask = Callable[..., dict[str, object]]
PROBLEM = "application/problem+json"
RACES = 20


def cancelled_task(client: TestClient, user: Headers, make_task: MakeTask) -> tuple[str, Response]:
    """A new cancelled task of `user`: its URL and a GET of it, to compare with later."""
    url = f"/tasks/{make_task(title='Cancelled', priority=2, status='cancelled')['id']}"
    return url, client.get(url, headers=user)


def assert_refused(response: Response, request: str) -> None:
    assert response.status_code == 409, (
        f"{request} on a cancelled task answered {response.status_code}: refuse it with 409 Conflict"
    )
    assert response.headers["content-type"] == PROBLEM, "The 409 should be a problem, like every error"
    detail = response.json()["detail"]
    assert "cancelled" in detail.lower(), f"Say why in `detail` (the task is cancelled); it says {detail!r}"


def assert_unchanged(client: TestClient, user: Headers, url: str, before: Response) -> None:
    after = client.get(url, headers=user)
    assert after.json() == before.json(), "A refused change must change nothing, but the task did change"
    assert after.headers["etag"] == before.headers["etag"], "A refused change must leave the ETag as it was"


def test_a_patch_on_a_cancelled_task_is_a_409(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    url, before = cancelled_task(client, user, make_task)
    for body in ({"title": "Changed"}, {"status": "in_progress"}, {"status": "cancelled"}, {"priority": 5}):
        assert_refused(client.patch(url, json=body, headers=user), f"PATCH {body}")
        assert_unchanged(client, user, url, before)
    matching = {**user, "If-Match": before.headers["etag"]}
    assert_refused(client.patch(url, json={"title": "Changed"}, headers=matching), "PATCH with a matching If-Match")
    assert_unchanged(client, user, url, before)


def test_a_put_on_a_cancelled_task_is_a_409_unless_it_reopens_it(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    url, before = cancelled_task(client, user, make_task)
    for status in ("completed", "in_progress", "cancelled"):
        assert_refused(client.put(url, json={"title": "Replaced", "status": status}, headers=user), f"PUT ({status})")
        assert_unchanged(client, user, url, before)
    reopened = client.put(url, json={"title": "Replaced", "status": "pending"}, headers=user)
    assert reopened.status_code == 200, f"A PUT with status pending reopens the task, got {reopened.status_code}"
    assert reopened.json()["title"] == "Replaced"
    url, _ = cancelled_task(client, user, make_task)
    defaulted = client.put(url, json={"title": "Replaced"}, headers=user)
    assert defaulted.status_code == 200, "A PUT without status is a PUT with status pending (its default): allow it"
    assert defaulted.json()["status"] == "pending"


def test_a_patch_back_to_pending_reopens_the_task(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    url, _ = cancelled_task(client, user, make_task)
    reopened = client.patch(url, json={"status": "pending"}, headers=user)
    assert reopened.status_code == 200, f'PATCH {{"status": "pending"}} must be allowed, got {reopened.status_code}'
    assert client.get(url, headers=user).json()["status"] == "pending"
    changed = client.patch(url, json={"title": "Changed again"}, headers=user)
    assert changed.status_code == 200, "Once pending again, the task takes any change"
    url, _ = cancelled_task(client, user, make_task)
    both = client.patch(url, json={"status": "pending", "title": "Back"}, headers=user)
    assert both.status_code == 200, "A PATCH that sets status pending may change other fields with it"
    assert both.json()["title"] == "Back"


def test_other_tasks_and_deletion_are_not_affected(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    url, _ = cancelled_task(client, user, make_task)
    cancelled = client.patch(url, json={"status": "pending"}, headers=user)
    assert cancelled.status_code == 200
    assert client.patch(url, json={"status": "cancelled"}, headers=user).status_code == 200, "Cancelling is allowed"
    done = make_task(status="completed")
    assert client.patch(f"/tasks/{done['id']}", json={"title": "Still editable"}, headers=user).status_code == 200, (
        "Only cancelled tasks are frozen: a completed one still takes changes"
    )
    assert client.delete(url, headers=user).status_code == 204, "A cancelled task can still be deleted"


def test_an_admin_is_held_to_the_rule_too(
    client: TestClient, user: Headers, admin: Headers, make_task: MakeTask
) -> None:
    url, before = cancelled_task(client, user, make_task)
    assert_refused(client.patch(url, json={"priority": 5}, headers=admin), "An admin's PATCH")
    assert_unchanged(client, user, url, before)


def test_another_users_cancelled_task_is_still_a_404(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    url, before = cancelled_task(client, user, make_task)
    other = make_user()
    for method in ("PUT", "PATCH"):
        response = client.request(method, url, json={"title": "Hijacked"}, headers=other)
        assert response.status_code == 404, (
            f"{method} on another user's task answered {response.status_code}: it must stay a 404, "
            "as if the task did not exist (check who owns it before the rule)"
        )
    assert_unchanged(client, user, url, before)


def patch_together(client: TestClient, headers: Headers, url: str, bodies: list[dict[str, str]]) -> list[Response]:
    """One PATCH per body, each in its own thread, all released at the same instant."""
    barrier = threading.Barrier(len(bodies))

    def patch(body: dict[str, str]) -> Response:
        barrier.wait(timeout=5)
        return client.patch(url, json=body, headers=headers)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(patch, bodies))


def test_the_rule_holds_when_a_change_races_a_cancellation(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    for _ in range(RACES):
        url = f"/tasks/{make_task()['id']}"
        cancel, change = patch_together(client, user, url, [{"status": "cancelled"}, {"title": "Changed"}])
        assert cancel.status_code == 200, cancel.text
        assert change.status_code in (200, 409), change.text
        if change.status_code == 200:
            assert change.json()["status"] == "pending", (
                "A change was written over a task that a concurrent request had just cancelled: check the "
                "rule inside the storage's lock (memory) or transaction (SQL), where the write happens"
            )


def test_the_409_is_documented_for_put_and_patch(client: TestClient) -> None:
    operations: dict[str, Any] = client.get("/openapi.json").json()["paths"]["/tasks/{task_id}"]
    for method in ("put", "patch"):
        responses = operations[method]["responses"]
        assert "409" in responses, f"Document the 409 of {method.upper()} /tasks/{{task_id}} in main.py"
        assert PROBLEM in responses["409"]["content"], "The 409 is a problem (application/problem+json)"
