"""RFC 9457 problem details for every error (issue 2, point 5).

Routing errors and 500s do not depend on storage, so those tests run on one app; 422s
come from routes that need a user, so they run on every backend.
"""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from main import create_app
from tests.conftest import PROBLEM, PROBLEM_FIELDS, Headers, assert_problem, make_settings, running

SECRET_MESSAGE = "secret SQL SELECT password_hash FROM users WHERE email = 'root@example.com'"


@pytest.fixture
def plain() -> Iterator[TestClient]:
    """An app on its own in-memory store: for errors that never reach storage."""
    with running(make_settings()) as client:
        yield client


@pytest.mark.parametrize("path", ["/nope", "/tasks/1/comments", "/admin", "/users"])
def test_unknown_route_is_a_404_problem(plain: TestClient, path: str) -> None:
    body = assert_problem(plain.get(path, headers={"X-Request-ID": "trace-404"}), 404)
    assert body["instance"] == path
    assert body["request_id"] == "trace-404"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/tasks", "GET, POST"),
        ("PUT", "/tasks", "GET, POST"),
        ("POST", "/tasks/1", "GET, PUT, PATCH, DELETE"),
        ("GET", "/auth/token", "POST"),
        ("GET", "/auth/register", "POST"),
        ("PATCH", "/users/me", "GET"),
        ("POST", "/admin/users", "GET"),
        ("GET", "/admin/tasks", "DELETE"),
        ("POST", "/health", "GET"),
    ],
)
def test_wrong_method_is_a_405_problem_with_allow(plain: TestClient, method: str, path: str, allow: str) -> None:
    """`Allow` lists every method of the path, not just one route's (RFC 9110 §15.5.6)."""
    response = plain.request(method, path)
    body = assert_problem(response, 405)
    assert response.headers["allow"] == allow
    assert body["instance"] == path


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "issue"),
    [
        ("POST", "/tasks", {"json": {}}, (["body", "title"], "missing")),
        ("POST", "/tasks", {"json": {"title": "x", "priority": 9}}, (["body", "priority"], "less_than_equal")),
        ("GET", "/tasks", {"params": {"limit": "0"}}, (["query", "limit"], "greater_than_equal")),
        ("GET", "/tasks/abc", {}, (["path", "task_id"], "int_parsing")),
        ("POST", "/auth/register", {"json": {"email": "x", "password": "long-enough"}}, (["body", "email"], None)),
    ],
    ids=["missing-title", "priority-range", "limit-zero", "bad-id", "bad-email"],
)
def test_validation_error_is_a_422_problem_with_errors(
    client: TestClient,
    user: Headers,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    issue: tuple[list[str], str | None],
) -> None:
    response = client.request(method, path, headers=user, **kwargs)
    body = assert_problem(response, 422)
    errors = body["errors"]
    assert errors and all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert all(isinstance(error["msg"], str) and error["msg"] for error in errors)
    loc, error_type = issue
    matching = [error for error in errors if error["loc"] == loc]
    assert matching, errors
    assert error_type is None or matching[0]["type"] == error_type


def test_unexpected_exception_is_a_500_problem_that_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """The client gets a generic sentence; the exception, with the request id, goes to the server log."""
    app = create_app(make_settings())

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError(SECRET_MESSAGE)

    # The app's "tasks" logger does not propagate to the root; caplog only hooks such loggers
    # itself when they existed before this test started, so attach it here otherwise.
    error_log = logging.getLogger("tasks.error")
    attach = caplog.handler not in logging.getLogger("tasks").handlers
    if attach:
        error_log.addHandler(caplog.handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/explode", headers={"X-Request-ID": "trace-500"})
    finally:
        error_log.removeHandler(caplog.handler)
    body = assert_problem(response, 500)
    assert body["instance"] == "/explode"
    for leak in ("secret", "SELECT", "password_hash", "RuntimeError", "Traceback", "explode()", ".py"):
        assert leak not in response.text
    logged = [record for record in caplog.records if record.name == "tasks.error"]
    assert len(logged) == 1
    assert getattr(logged[0], "request_id", None) == "trace-500"
    assert "trace-500" in logged[0].getMessage()
    assert logged[0].exc_info is not None and str(logged[0].exc_info[1]) == SECRET_MESSAGE


def test_openapi_documents_errors_as_problems(plain: TestClient) -> None:
    """Every 4xx/5xx of every operation is `application/problem+json` with the Problem schema."""
    schema = plain.get("/openapi.json").json()
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) >= PROBLEM_FIELDS
    documented: set[tuple[str, str, str]] = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert set(response["content"]) == {PROBLEM}, (method, path, status)
                    assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
                    documented.add((method, path, status))
    expected = {
        ("post", "/auth/register", "409"),
        ("post", "/auth/register", "422"),
        ("post", "/auth/token", "401"),
        ("get", "/users/me", "401"),
        ("get", "/tasks", "422"),
        ("get", "/tasks/{task_id}", "404"),
        ("get", "/admin/users", "403"),
        ("delete", "/admin/tasks", "401"),
        ("get", "/ready", "503"),
        ("get", "/", "500"),
    }
    assert expected <= documented


# Both figures come from contract v1.1 ("Bounded error bodies"); the byte bound is generous
# for 50 entries yet far below what 4,000 listed entries take.
LISTED_AT_MOST = 50
SMALL_BODY_BYTES = 16_384


def test_a_422_lists_at_most_50_errors_and_counts_them_all(client: TestClient, user: Headers) -> None:
    """4,000 empty `tag=` are 4,000 problems: the body names the count but stays small."""
    response = client.get("/tasks?" + "&".join(["tag="] * 4000), headers=user)
    body = assert_problem(response, 422)
    assert len(body["errors"]) == LISTED_AT_MOST
    assert all(error["loc"][:2] == ["query", "tag"] for error in body["errors"])
    assert "4000" in body["detail"]
    assert len(response.content) < SMALL_BODY_BYTES


def test_a_body_with_many_bad_fields_is_capped_too(client: TestClient, user: Headers) -> None:
    body_fields = {"title": "x", **{f"unknown_{n}": n for n in range(300)}}
    body = assert_problem(client.post("/tasks", json=body_fields, headers=user), 422)
    assert len(body["errors"]) == LISTED_AT_MOST
    assert "300" in body["detail"]


def test_fewer_than_50_problems_are_all_listed(client: TestClient, user: Headers) -> None:
    bad = {"title": "", "priority": 9, "status": "nope", "due_date": "someday", "tags": "x", "extra": 1}
    body = assert_problem(client.post("/tasks", json=bad, headers=user), 422)
    fields = {error["loc"][1] for error in body["errors"]}
    assert fields == set(bad)
    assert f"{len(body['errors'])} validation problems" in body["detail"]
