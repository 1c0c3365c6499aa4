"""Exercise 01: tasks get an optional `estimate_minutes`, an integer from 1 to 10000, or null.

Every check runs once per backend (memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is set).
Run them with `make exercise N=01`.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import Headers, MakeUser

FIELD = "estimate_minutes"
ADD_THE_FIELD = "add estimate_minutes to class TaskBase in models.py"
ADD_THE_COLUMN = (
    "the SQL backends need the column too: add it to class Task in db_models.py, then generate "
    "the migration as the README's 'Changing the schema' shows"
)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The suite's client, except that a crash in the app comes back as a 500 answer (as from a
    real server) instead of a traceback, so the check can say what it means."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def why(response: Response, request: str) -> str:
    """A failure message for an answer that is not the one expected."""
    errors = (response.json().get("errors") or []) if response.status_code == 422 else []
    if any(error["type"] == "extra_forbidden" and error["loc"][-1] == FIELD for error in errors):
        return f"{request} refused {FIELD} as an unknown field (422): {ADD_THE_FIELD}"
    if response.status_code >= 500:
        return f"{request} failed with {response.status_code} on this backend: {ADD_THE_COLUMN}"
    return f"{request} answered {response.status_code}: {response.text}"


def estimate_of(response: Response, request: str, expected_status: int = 200) -> Any:
    """The estimate in a task answer, after checking the answer is a success with the field in it."""
    assert response.status_code == expected_status, why(response, request)
    task = response.json()
    assert FIELD in task, f"{request}: the task in the answer has no {FIELD} field: {ADD_THE_FIELD}"
    return task[FIELD]


def create(client: TestClient, headers: Headers, **fields: Any) -> tuple[str, Any]:
    """POST a task; its path and the estimate in the answer."""
    response = client.post("/tasks", json={"title": "Estimate me", **fields}, headers=headers)
    request = f"POST /tasks with {fields}" if fields else "POST /tasks"
    return response.headers.get("location", ""), estimate_of(response, request, 201)


def assert_stored(client: TestClient, headers: Headers, path: str, expected: int | None, after: str) -> None:
    """The estimate a later GET reads back is `expected`."""
    read = estimate_of(client.get(path, headers=headers), f"GET {path}")
    lost = " (the SQL backends keep only what has a column in class Task, db_models.py)" if read is None else ""
    assert read == expected, f"after {after}, GET {path} answers estimate_minutes={read!r}, not {expected!r}{lost}"


def test_a_new_task_keeps_its_estimate(client: TestClient, user: Headers) -> None:
    path, estimate = create(client, user, estimate_minutes=30)
    assert estimate == 30, f"POST /tasks with estimate_minutes=30 answered {estimate!r}, not 30"
    assert_stored(client, user, path, 30, "POST /tasks with estimate_minutes=30")
    listed = client.get("/tasks", headers=user).json()["items"]
    assert [task.get(FIELD) for task in listed] == [30], f"GET /tasks lists the task without its estimate: {listed}"


def test_a_whole_number_written_as_a_float_counts(client: TestClient, user: Headers) -> None:
    """JSON Schema counts 45.0 as an integer, and so does this API (see how `priority` is declared in models.py)."""
    response = client.post("/tasks", json={"title": "Estimate me", FIELD: 45.0}, headers=user)
    taken = "45.0 is a whole number: take it as 45, as `priority` in models.py does."
    assert response.status_code == 201, f"{taken} {why(response, 'POST /tasks')}"
    path, estimate = response.headers["location"], estimate_of(response, "POST /tasks with estimate_minutes=45.0", 201)
    assert estimate == 45, f"POST /tasks with estimate_minutes=45.0 answered {estimate!r}, not 45"
    assert_stored(client, user, path, 45, "POST /tasks with estimate_minutes=45.0")


def test_a_task_without_an_estimate_has_null(client: TestClient, user: Headers) -> None:
    path, estimate = create(client, user)
    assert estimate is None, f"a task created without an estimate should have estimate_minutes=null, not {estimate!r}"
    assert_stored(client, user, path, None, "POST /tasks without an estimate")


def test_put_replaces_the_estimate_and_leaving_it_out_means_null(client: TestClient, user: Headers) -> None:
    path, _ = create(client, user, estimate_minutes=30)
    replaced = estimate_of(client.put(path, json={"title": "Replaced", FIELD: 45}, headers=user), f"PUT {path}")
    assert replaced == 45, f"PUT {path} with estimate_minutes=45 answered {replaced!r}"
    left_out = estimate_of(client.put(path, json={"title": "Replaced"}, headers=user), f"PUT {path}")
    assert left_out is None, f"a PUT is a full replace: without estimate_minutes it is null, not {left_out!r}"
    assert_stored(client, user, path, None, f"PUT {path} without an estimate")


def test_patch_sets_and_clears_the_estimate(client: TestClient, user: Headers) -> None:
    path, _ = create(client, user, title="Keep my title")
    patched = client.patch(path, json={FIELD: 60}, headers=user)
    assert estimate_of(patched, f"PATCH {path} with estimate_minutes=60") == 60, f"PATCH answered {patched.text}"
    assert patched.json()["title"] == "Keep my title", "a PATCH of the estimate changed the title too"
    assert_stored(client, user, path, 60, "PATCH estimate_minutes=60")
    cleared = estimate_of(client.patch(path, json={FIELD: None}, headers=user), f"PATCH {path} with null")
    assert cleared is None, f"PATCH with estimate_minutes=null should clear it, but it answered {cleared!r}"
    assert_stored(client, user, path, None, "PATCH estimate_minutes=null")


REFUSED = [
    pytest.param(0, "estimates start at 1 (Field(ge=...))", id="zero"),
    pytest.param(10001, "estimates end at 10000 (Field(le=...))", id="above-10000"),
    pytest.param("30", "the API is strict about JSON types: a string is not a number (Field(strict=True))", id="text"),
    pytest.param(True, "the API is strict about JSON types: true is not a number (Field(strict=True))", id="boolean"),
]


@pytest.mark.parametrize(("bad", "rule"), REFUSED)
def test_an_estimate_outside_the_rules_is_refused(client: TestClient, user: Headers, bad: object, rule: str) -> None:
    refused = client.post("/tasks", json={"title": "Estimate me", FIELD: bad}, headers=user)
    assert refused.status_code == 422, f"POST /tasks with estimate_minutes={bad!r} must be a 422: {rule}"
    errors = refused.json()["errors"]
    assert errors[0]["type"] != "extra_forbidden", why(refused, f"POST /tasks with estimate_minutes={bad!r}")
    assert errors[0]["loc"] == ["body", FIELD], f"the 422 should blame estimate_minutes: {errors}"
    path, _ = create(client, user, estimate_minutes=30)
    patched = client.patch(path, json={FIELD: bad}, headers=user)
    assert patched.status_code == 422, f"PATCH with estimate_minutes={bad!r} must be a 422, got {why(patched, 'it')}"
    assert_stored(client, user, path, 30, f"a refused PATCH with estimate_minutes={bad!r}")


def test_only_the_owner_can_change_an_estimate(client: TestClient, user: Headers, make_user: MakeUser) -> None:
    path, _ = create(client, user, estimate_minutes=30)
    stranger = client.patch(path, json={FIELD: 5}, headers=make_user())
    assert stranger.status_code == 404, f"another user's PATCH of {path} must be a 404, got {why(stranger, 'it')}"
    anonymous = client.patch(path, json={FIELD: 5})
    assert anonymous.status_code == 401, f"a PATCH without a token must be a 401, got {anonymous.status_code}"
    assert_stored(client, user, path, 30, "refused PATCHes")


def integer_branch(schema: dict[str, Any], model: str) -> dict[str, Any]:
    """The estimate's schema in `model`, without its `null` branch."""
    properties = schema["components"]["schemas"][model]["properties"]
    names = set(properties)
    assert FIELD in names, f"the OpenAPI schema of {model} has no {FIELD}: {ADD_THE_FIELD}"
    branches = properties[FIELD].get("anyOf", [properties[FIELD]])
    integers: list[dict[str, Any]] = [branch for branch in branches if branch.get("type") == "integer"]
    assert integers, f"the OpenAPI schema of {model} does not say {FIELD} is an integer: {properties[FIELD]}"
    return integers[0]


def test_the_schema_documents_the_estimate(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for model in ("Task", "TaskCreate", "TaskUpdate"):
        integer = integer_branch(schema, model)
        bounds = (integer.get("minimum"), integer.get("maximum"))
        assert bounds == (1, 10000), f"the schema of {model} should bound {FIELD} to 1..10000, not {bounds}"
    required = schema["components"]["schemas"]["Task"].get("required", [])
    assert FIELD in required, "every task in an answer has an estimate_minutes (maybe null), so Task requires it"
