"""Checks for exercise 08: POST /tasks is limited per user, as TASK_CREATE_RATE_LIMIT says.

Most checks run on an app whose limit is 3 a minute (the `settings` fixture below replaces the
suite's); the app is built afresh for each test, so each starts with empty counters.
"""

from collections import Counter

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import ValidationError

from settings import Settings
from storage import Storage
from tests.conftest import PASSWORD, Headers, MakeUser, assert_problem, login, make_settings, running

LIMIT = 3
NOT_LIMITED = (
    f"POST /tasks number {LIMIT + 1} within a minute answered {{status}}, not 429. With "
    f"TASK_CREATE_RATE_LIMIT={LIMIT}/minute, each user may create {LIMIT} tasks a minute: add the setting "
    "in settings.py and take a place in a RateLimit (rate_limit.py) in main.create_task"
)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The suite's test settings, with task creation limited to 3 a minute for each user."""
    monkeypatch.setenv("TASK_CREATE_RATE_LIMIT", f"{LIMIT}/minute")
    return make_settings()


def create(client: TestClient, headers: Headers, title: str = "A task") -> Response:
    return client.post("/tasks", json={"title": title}, headers=headers)


def use_up_the_limit(client: TestClient, headers: Headers) -> Response:
    """Create as many tasks as the limit allows, then one more: the answer to that one."""
    for number in range(1, LIMIT + 1):
        response = create(client, headers, f"Task {number}")
        assert response.status_code == 201, (
            f"This user's creation {number} of {LIMIT} was refused ({response.status_code}): each user may create "
            f"{LIMIT} tasks a minute, however many other users create: {response.text}"
        )
    return create(client, headers, "One too many")


def test_creating_past_the_limit_is_429_with_retry_after(client: TestClient, user: Headers) -> None:
    refused = use_up_the_limit(client, user)
    assert refused.status_code == 429, NOT_LIMITED.format(status=refused.status_code)
    assert_problem(refused, 429)
    wait = refused.headers.get("Retry-After", "")
    assert wait.isdigit() and 1 <= int(wait) <= 60, f"Retry-After must be the seconds to wait (1-60), not {wait!r}"


def test_a_refused_creation_creates_nothing(client: TestClient, user: Headers) -> None:
    refused = use_up_the_limit(client, user)
    assert refused.status_code == 429, NOT_LIMITED.format(status=refused.status_code)
    listed = client.get("/tasks", headers=user)
    titles = [task["title"] for task in listed.json()["items"]]
    assert "One too many" not in titles, "The refused task was created anyway: check the limit before db.create_task"
    assert (listed.json()["total"], listed.headers["X-Total-Count"]) == (LIMIT, str(LIMIT))


def test_only_creation_is_limited(client: TestClient, user: Headers) -> None:
    refused = use_up_the_limit(client, user)
    assert refused.status_code == 429, NOT_LIMITED.format(status=refused.status_code)
    task_id = client.get("/tasks", headers=user).json()["items"][0]["id"]
    answers = {
        "GET": client.get(f"/tasks/{task_id}", headers=user).status_code,
        "PATCH": client.patch(f"/tasks/{task_id}", json={"status": "completed"}, headers=user).status_code,
        "PUT": client.put(f"/tasks/{task_id}", json={"title": "Renamed"}, headers=user).status_code,
        "DELETE": client.delete(f"/tasks/{task_id}", headers=user).status_code,
    }
    expected = {"GET": 200, "PATCH": 200, "PUT": 200, "DELETE": 204}
    assert answers == expected, "Only POST /tasks is limited: reading, changing and deleting tasks are not"


def test_other_users_have_limits_of_their_own(client: TestClient, user: Headers, make_user: MakeUser) -> None:
    refused = use_up_the_limit(client, user)
    assert refused.status_code == 429, NOT_LIMITED.format(status=refused.status_code)
    other = make_user()  # from the same client address: the limit counts users, not addresses
    assert use_up_the_limit(client, other).status_code == 429, "The second user was never limited"
    assert create(client, user).status_code == 429, "The first user's limit ended early"


def test_the_default_is_60_a_minute(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASK_CREATE_RATE_LIMIT", raising=False)
    with running(make_settings(), storage) as client:
        email = "default-limit@example.com"
        assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
        headers = login(client, email)
        statuses = Counter(create(client, headers, f"Task {number}").status_code for number in range(61))
    assert statuses == {201: 60, 429: 1}, (
        f"Without TASK_CREATE_RATE_LIMIT, 60 creations a minute pass and the 61st is refused: got {dict(statuses)}"
    )


def test_a_malformed_limit_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_CREATE_RATE_LIMIT", "often")
    try:
        make_settings()
    except ValidationError as error:
        assert "task_create_rate_limit" in str(error), f"The error should name the setting: {error}"
    else:
        accepted = "TASK_CREATE_RATE_LIMIT=often was accepted: validate it in settings.py like LOGIN_RATE_LIMIT"
        pytest.fail(accepted, pytrace=False)


def test_429_is_documented_for_post_tasks() -> None:
    with running(make_settings()) as client:
        responses = client.get("/openapi.json").json()["paths"]["/tasks"]["post"]["responses"]
    documented = sorted(responses)
    assert "429" in documented, "POST /tasks does not document 429: add it to the route's responses (problems(...))"
    assert "Retry-After" in responses["429"]["headers"], "The documented 429 has no Retry-After header"
    assert "application/problem+json" in responses["429"]["content"], "The documented 429 is not a problem+json body"
