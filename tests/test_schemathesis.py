"""Schemathesis against the ASGI app: every check, every phase, on every storage backend.

Requests drawn from the OpenAPI schema prove that it tells the truth: every status code and
content type the API answers is documented, and it accepts what the schema calls valid and
refuses what it calls invalid. The few refusals no schema can express are listed (and
justified) in tests/schemathesis_hooks.py. The same run against a live server:

    SCHEMATHESIS_HOOKS=tests.schemathesis_hooks .venv/bin/schemathesis run \\
        http://127.0.0.1:8000/openapi.json --checks all \\
        --phases examples,coverage,fuzzing,stateful -H "Authorization: Bearer $TOKEN"
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from schemathesis import Case
from schemathesis.core.failures import FailureGroup
from sqlalchemy import text

from db_models import Base
from main import create_app
from memory_store import MemoryStore
from sql_store import SqlStore
from storage import Storage, get_db
from tests import schemathesis_hooks  # importing it registers the hooks
from tests.conftest import PASSWORD, make_settings

pytestmark = pytest.mark.slow  # thousands of requests: `make test` runs it, `make test-fast` does not

# Fixed and bounded, so a run is repeatable and the whole file stays within a few minutes.
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
STATEFUL_SETTINGS = hypothesis.settings(FUZZ_SETTINGS, max_examples=25, stateful_step_count=8)

# Every request comes from the one test client address, so the per-client limits are raised
# out of the way of the fuzzer's many registrations and logins.
APP_SETTINGS = make_settings(register_rate_limit="100000/minute", login_client_rate_limit="100000/minute")

# Schemathesis collects one test per operation from a schema, so it is read at import time,
# from this app. No test calls it: each starts an app of its own (`started`), so no rate-limit
# count or stored row passes from one test, or one stateful scenario, to the next.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(APP_SETTINGS))


@dataclass(frozen=True)
class Target:
    """A new app for one test on one store, and the auth headers of its user."""

    app: FastAPI
    headers: dict[str, str]


def _login(client: TestClient, email: str) -> dict[str, str]:
    assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    response = client.post("/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def started(storage: Storage) -> Target:
    """A new app on an empty `storage`, with a user owning tasks 2-4; task 1 is someone else's.
    Small ids are what the fuzzer draws most, so reads and writes meet real tasks."""
    app = create_app(APP_SETTINGS)
    app.dependency_overrides[get_db] = lambda: storage
    with TestClient(app) as client:
        other = _login(client, "someone-else@example.com")
        assert client.post("/tasks", json={"title": "Not yours"}, headers=other).status_code == 201
        headers = _login(client, "fuzzer@example.com")
        for title in ("Write the tests", "Fuzz the API", "Ship it"):
            assert client.post("/tasks", json={"title": title, "tags": ["demo"]}, headers=headers).status_code == 201
    return Target(app, headers)


@pytest.fixture
def target(storage: Storage) -> Target:
    """A new app on this backend's empty store."""
    return started(storage)


@FUZZ_SETTINGS
@schema.parametrize()
def test_every_operation_keeps_its_schema_promises(case: Case[Any], target: Target) -> None:
    """Examples, coverage and fuzzing phases, each response judged by every check."""
    case.call_and_validate(app=target.app, headers=target.headers)


def emptied(storage: Storage) -> Storage:
    """The same kind of store with nothing in it, its ids counting from 1 again."""
    if not isinstance(storage, SqlStore):
        return MemoryStore()
    with storage.engine.begin() as connection:
        if storage.kind == "postgresql":
            connection.execute(text("TRUNCATE users, tasks, task_tags, idempotency_keys RESTART IDENTITY CASCADE"))
        else:  # SQLite hands out max(id) + 1, so an empty table starts again at 1
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
    return storage


def test_stateful_workflows_keep_their_schema_promises(storage: Storage) -> None:
    """Chains of calls along the schema's links (create, then read, change, delete it...).

    Each scenario starts from a new app on an emptied store: Hypothesis replays scenarios and
    must see the same answers each time, whatever earlier scenarios or other tests did."""

    class FromAnEmptyStore(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.target = started(emptied(storage))

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"app": self.target.app, "headers": self.target.headers}

    FromAnEmptyStore.run(settings=STATEFUL_SETTINGS)


def _drop_ok(responses: dict[str, Any]) -> None:
    del responses["200"]


def _promise_a_header(responses: dict[str, Any]) -> None:
    responses["200"]["headers"]["X-Never-Sent"] = {"required": True, "schema": {"type": "string"}}


@pytest.mark.parametrize(
    ("breakage", "failure"),
    [(_drop_ok, "ST103 Undocumented status code"), (_promise_a_header, "ST107 Missing required response headers")],
)
def test_a_schema_that_lies_fails_the_run(breakage: Callable[[dict[str, Any]], None], failure: str) -> None:
    """The control: with one promise broken, the same checks fail, so the runs above can fail."""
    app = create_app(make_settings())
    schema = app.openapi()
    breakage(schema["paths"]["/health"]["get"]["responses"])
    case = schemathesis.openapi.from_asgi("/openapi.json", app)["/health"]["GET"].Case()
    with pytest.raises(FailureGroup) as raised:
        case.call_and_validate()
    assert failure in str(raised.value)


@pytest.mark.parametrize(
    ("method", "path", "request_parts", "status", "excused"),
    [
        ("POST", "/tasks", {"body": {"title": "x", "tags": [f"t{i}" for i in range(11)]}}, 422, True),
        ("POST", "/tasks", {"body": {"title": " \t"}}, 422, False),
        ("POST", "/tasks", {"body": {"title": "x", "priority": 9}}, 422, False),
        ("GET", "/tasks", {"query": {"offset": 0, "cursor": "abc"}}, 422, True),
        ("GET", "/tasks", {"query": {"cursor": "abc"}}, 422, True),
        ("GET", "/tasks", {"query": {"limit": 0}}, 422, False),
        ("PUT", "/tasks/{task_id}", {"path_parameters": {"task_id": 2}, "body": {"title": "x"}}, 200, False),
        (
            "PUT",
            "/tasks/{task_id}",
            {"path_parameters": {"task_id": 2}, "body": {"title": "x"}, "headers": {"If-Match": '"2-99"'}},
            412,
            True,
        ),
    ],
)
def test_only_rules_no_schema_can_state_excuse_a_refusal(
    method: str, path: str, request_parts: dict[str, Any], status: int, excused: bool
) -> None:
    """The hooks' exemption is narrow: any other refusal of a valid request stays a failure."""
    target = started(MemoryStore())  # the hooks, not the backends, are on trial here
    case = schema[path][method].Case(**request_parts)
    response = case.call(app=target.app, headers=target.headers)
    assert response.status_code == status
    assert schemathesis_hooks.is_contract_refusal(case, response) is excused


def test_every_cursor_the_api_issues_fits_the_schema(client: TestClient, user: dict[str, str]) -> None:
    """The longest cursor (a title sort over 200 escaped emoji) is within the `cursor` maxLength."""
    for _ in range(2):
        assert client.post("/tasks", json={"title": "\U0001f600" * 200}, headers=user).status_code == 201
    first = client.get("/tasks", params={"sort_by": "title", "limit": 1}, headers=user)
    cursor = first.json()["next_cursor"]
    parameters = client.get("/openapi.json").json()["paths"]["/tasks"]["get"]["parameters"]
    limit = next(p["schema"]["maxLength"] for p in parameters if p["name"] == "cursor")
    assert len(cursor) <= limit
    second = client.get("/tasks", params={"sort_by": "title", "limit": 1, "cursor": cursor}, headers=user)
    assert second.status_code == 200
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]
