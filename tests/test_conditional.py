"""Conditional requests (RFC 9110 §13): ETag, If-None-Match, If-Match, and their atomicity.

Every test runs on each storage backend. The concurrency tests use real threads against
the TestClient: inside `with TestClient(app)` all requests share one event loop, so they
interleave at every await (the SQL store runs in a thread pool); `Overlap` proves that
the requests really were in flight at the same time, so a pass is not an accident of
serialised requests.
"""

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from etags import ENTITY_TAG
from tests.conftest import Headers, MakeTask, MakeUser
from tests.live_server import simultaneously
from tests.overlap import Overlap

WRITERS = 20


def version_of(etag: str, task_id: int) -> int:
    """The version inside one of our strong ETags (`"<id>-<version>"`)."""
    match = ENTITY_TAG.fullmatch(etag)
    assert match is not None and int(match[1]) == task_id, etag
    return int(match[2])


def test_every_task_response_has_a_strong_etag_that_changes_with_each_write(client: TestClient, user: Headers) -> None:
    created = client.post("/tasks", json={"title": "Tagged"}, headers=user)
    assert created.status_code == 201
    task_id = created.json()["id"]
    url = f"/tasks/{task_id}"
    seen = [created.headers["ETag"]]
    writes = [
        ("PUT", {"title": "Replaced", "priority": 2}),
        ("PATCH", {"status": "in_progress"}),
        ("PATCH", {"status": "in_progress"}),  # same content, still a modification: new validator
        ("PUT", {"title": "Replaced", "priority": 2}),
    ]
    for method, body in writes:
        response = client.request(method, url, json=body, headers=user)
        assert response.status_code == 200, response.text
        seen.append(response.headers["ETag"])
        read = client.get(url, headers=user)
        assert read.headers["ETag"] == response.headers["ETag"]
        assert read.json() == response.json()
    for etag in seen:
        assert etag.startswith('"') and etag.endswith('"'), f"{etag} is not a strong validator"
    assert len(set(seen)) == len(seen), seen


MATCHING_IF_NONE_MATCH = ["{etag}", '"0-0", {etag}', "*", "W/{etag}", 'W/"0-0" , W/{etag}']


def test_if_none_match_that_matches_gives_304_with_no_body(
    client: TestClient, user: Headers, make_task: MakeTask
) -> None:
    """Exact, list, `*` and weak forms all match (If-None-Match uses the weak comparison)."""
    task = make_task()
    url = f"/tasks/{task['id']}"
    etag = client.get(url, headers=user).headers["ETag"]
    for header in MATCHING_IF_NONE_MATCH:
        response = client.get(url, headers={**user, "If-None-Match": header.format(etag=etag)})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["ETag"] == etag
        assert "content-type" not in response.headers


def test_if_none_match_that_does_not_match_gives_the_task(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    """A stale or foreign tag gets the full task; on another user's task even `*` is a plain 404."""
    task = make_task()
    url = f"/tasks/{task['id']}"
    stale = client.get(url, headers=user).headers["ETag"]
    current = client.patch(url, json={"priority": 5}, headers=user).headers["ETag"]
    for header in (stale, '"999-1"', '"garbage"', f"W/{stale}"):
        response = client.get(url, headers={**user, "If-None-Match": header})
        assert response.status_code == 200, header
        assert response.json()["priority"] == 5
        assert response.headers["ETag"] == current
    intruder = client.get(url, headers={**make_user(), "If-None-Match": "*"})
    assert intruder.status_code == 404
    assert intruder.headers["content-type"] == "application/problem+json"


WRITES = {
    "PUT": {"title": "Replaced", "priority": 4},
    "PATCH": {"title": "Patched"},
    "DELETE": None,
}
MATCHING_IF_MATCH = ["{current}", "*", '"0-0", {current}']
FAILING_IF_MATCH = ["{stale}", 'W/"{bare}"', '"garbage"', "{stale}, W/{current}"]


@pytest.mark.parametrize("method", WRITES)
def test_if_match_that_matches_lets_the_write_through(
    client: TestClient, user: Headers, make_task: MakeTask, method: str
) -> None:
    for header in MATCHING_IF_MATCH:
        url = f"/tasks/{make_task()['id']}"
        current = client.get(url, headers=user).headers["ETag"]
        value = header.format(current=current)
        response = client.request(method, url, json=WRITES[method], headers={**user, "If-Match": value})
        if method == "DELETE":
            assert response.status_code == 204, value
            assert client.get(url, headers=user).status_code == 404
        else:
            assert response.status_code == 200, value
            assert response.headers["ETag"] != current
            assert client.get(url, headers=user).json() == response.json()


@pytest.mark.parametrize("method", WRITES)
def test_if_match_that_does_not_match_is_412_and_changes_nothing(
    client: TestClient, user: Headers, make_task: MakeTask, method: str
) -> None:
    """A weak tag never satisfies If-Match (strong comparison), even when it names the current version."""
    task = make_task()
    url = f"/tasks/{task['id']}"
    stale = client.get(url, headers=user).headers["ETag"]
    before = client.patch(url, json={"description": "moved on"}, headers=user)
    current = before.headers["ETag"]
    for header in FAILING_IF_MATCH:
        value = header.format(stale=stale, current=current, bare=current.strip('"'))
        response = client.request(method, url, json=WRITES[method], headers={**user, "If-Match": value})
        assert response.status_code == 412, value
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 412
        after = client.get(url, headers=user)
        assert after.status_code == 200
        assert after.json() == before.json()
        assert after.headers["ETag"] == current


@pytest.mark.parametrize("method", WRITES)
def test_if_match_on_another_users_task_is_404_never_412(
    client: TestClient, user: Headers, make_user: MakeUser, make_task: MakeTask, method: str
) -> None:
    task = make_task()
    url = f"/tasks/{task['id']}"
    stale = client.get(url, headers=user).headers["ETag"]
    current = client.patch(url, json={"priority": 3}, headers=user).headers["ETag"]
    intruder = make_user()
    missing = client.request(method, "/tasks/999999", json=WRITES[method], headers={**intruder, "If-Match": "*"})
    assert missing.status_code == 404
    for value in (current, stale, "*"):
        response = client.request(method, url, json=WRITES[method], headers={**intruder, "If-Match": value})
        assert response.status_code == 404, value
        body = response.json()
        assert body["detail"] == f"Task {task['id']} not found"
        assert {**body, "detail": "", "instance": "", "request_id": ""} == {
            **missing.json(),
            "detail": "",
            "instance": "",
            "request_id": "",
        }
    owner_view = client.get(url, headers=user)
    assert owner_view.headers["ETag"] == current
    assert owner_view.json()["priority"] == 3


def test_concurrent_patches_with_one_if_match_let_exactly_one_through(
    client: TestClient, user: Headers, make_task: MakeTask, overlap: Overlap
) -> None:
    task = make_task()
    url = f"/tasks/{task['id']}"
    etag = client.get(url, headers=user).headers["ETag"]

    def patch(index: int) -> Response:
        return client.patch(url, json={"title": f"writer {index}"}, headers={**user, "If-Match": etag})

    responses = simultaneously(WRITERS, patch)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * (WRITERS - 1)
    assert overlap.peak > 1, "the requests never overlapped, so atomicity was not tested"
    (winner,) = [response for response in responses if response.status_code == 200]
    final = client.get(url, headers=user)
    assert final.json() == winner.json()
    assert final.headers["ETag"] == winner.headers["ETag"]
    assert version_of(final.headers["ETag"], task["id"]) == version_of(etag, task["id"]) + 1


def test_concurrent_patches_without_if_match_all_apply(
    client: TestClient, user: Headers, make_task: MakeTask, overlap: Overlap
) -> None:
    task = make_task()
    url = f"/tasks/{task['id']}"
    etag = client.get(url, headers=user).headers["ETag"]

    def patch(index: int) -> Response:
        return client.patch(url, json={"title": f"writer {index}"}, headers=user)

    responses = simultaneously(WRITERS, patch)
    assert [response.status_code for response in responses] == [200] * WRITERS
    assert overlap.peak > 1, "the requests never overlapped, so atomicity was not tested"
    etags = {response.headers["ETag"] for response in responses}
    assert len(etags) == WRITERS, "two writes produced the same version: one was lost"
    final = client.get(url, headers=user)
    assert version_of(final.headers["ETag"], task["id"]) == version_of(etag, task["id"]) + WRITERS
    assert final.headers["ETag"] in etags
