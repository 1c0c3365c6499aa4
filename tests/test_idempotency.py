"""`Idempotency-Key` on POST /tasks: a retried create replays the original and creates nothing.

Every test runs on each storage backend, except the restart test, which only means something
where keys outlive the process (SQLite and PostgreSQL).
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import ValidationError

from database import create_db_engine
from main import create_app
from settings import Settings
from sql_store import SqlStore
from storage import Storage, get_db
from tests.conftest import TEST_SECRET, Headers
from tests.live_server import simultaneously
from tests.overlap import Overlap

KEY = "order-7f3c2a"
BODY = {"title": "Pay invoice", "priority": 3, "tags": ["billing"]}


def total(client: TestClient, headers: Headers) -> int:
    response = client.get("/tasks", headers=headers)
    assert response.status_code == 200
    count: int = response.json()["total"]
    return count


def create(client: TestClient, headers: Headers, body: dict[str, Any], key: str | bytes = KEY) -> Response:
    raw = {name.encode(): value.encode() for name, value in headers.items()}  # bytes: keys may be non-ASCII
    raw[b"idempotency-key"] = key if isinstance(key, bytes) else key.encode()
    return client.post("/tasks", json=body, headers=raw)


# Bodies equal to BODY once validated: stripping, tag normalisation, explicit defaults, key order.
EQUIVALENT_BODIES = [
    BODY,
    {"title": "  Pay invoice ", "priority": 3, "tags": ["billing"]},
    {"tags": [" Billing", "billing"], "priority": 3, "title": "Pay invoice"},
    {**BODY, "status": "pending", "description": None, "due_date": None},
]


def test_a_replay_returns_the_original_answer_and_creates_nothing(client: TestClient, user: Headers) -> None:
    first = create(client, user, BODY)
    assert first.status_code == 201, first.text
    assert total(client, user) == 1
    for body in EQUIVALENT_BODIES:
        replay = create(client, user, body)
        assert replay.status_code == 201, body
        assert replay.json() == first.json()
        assert replay.headers["Location"] == first.headers["Location"] == f"/tasks/{first.json()['id']}"
        assert replay.headers["ETag"] == first.headers["ETag"]
    assert total(client, user) == 1


def test_a_replay_after_the_task_changed_still_returns_the_original_creation(client: TestClient, user: Headers) -> None:
    first = create(client, user, BODY)
    client.patch(first.headers["Location"], json={"status": "completed"}, headers=user)
    replay = create(client, user, BODY)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert total(client, user) == 1


@pytest.mark.parametrize(
    "other", [{**BODY, "title": "Pay rent"}, {**BODY, "priority": 4}, {"title": "Pay invoice"}], ids=str
)
def test_the_same_key_with_another_body_is_422(client: TestClient, user: Headers, other: dict[str, Any]) -> None:
    first = create(client, user, BODY)
    response = create(client, user, other)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in response.json()["detail"]
    assert total(client, user) == 1
    assert create(client, user, BODY).json() == first.json(), "the key still replays its own request"


def test_keys_are_per_user(client: TestClient, user: Headers, make_user: Callable[..., Headers]) -> None:
    other = make_user()
    mine = create(client, user, BODY)
    theirs = create(client, other, BODY)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["owner_id"] != mine.json()["owner_id"]
    assert create(client, other, {"title": "Something else"}).status_code == 422, "B's key now holds B's body"
    assert create(client, user, BODY).json() == mine.json()
    assert total(client, user) == total(client, other) == 1


MALFORMED_KEYS: list[str | bytes] = ["", " ", "x" * 256, "bad\x01key", "tab\tinside", "del\x7f", "ключ".encode()]


def test_a_malformed_key_is_422_and_creates_nothing(client: TestClient, user: Headers) -> None:
    for key in MALFORMED_KEYS:
        response = create(client, user, BODY, key)
        assert response.status_code == 422, repr(key)
        assert response.headers["content-type"] == "application/problem+json"
        assert {tuple(issue["loc"][:2]) for issue in response.json()["errors"]} == {("header", "idempotency-key")}
    assert total(client, user) == 0
    longest = "k" * 255  # the longest key allowed
    assert create(client, user, BODY, longest).status_code == 201
    assert create(client, user, BODY, longest).status_code == 201
    assert total(client, user) == 1


def test_simultaneous_requests_with_one_key_create_one_task(
    client: TestClient, user: Headers, overlap: Overlap
) -> None:
    responses = simultaneously(10, lambda _: create(client, user, BODY))
    assert [response.status_code for response in responses] == [201] * 10
    assert overlap.peak > 1, "the requests never overlapped"
    assert len({response.json()["id"] for response in responses}) == 1
    assert total(client, user) == 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Moves the clock the API reads when it decides which keys have expired."""

    def advance(by: timedelta) -> None:
        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> "Later":
                moment = datetime.now(tz or UTC) + by
                return cls.fromtimestamp(moment.timestamp(), tz)

        monkeypatch.setattr("storage.datetime", Later)

    return advance


@pytest.mark.parametrize(
    ("ttl_hours", "later", "replays"),
    [(24, timedelta(hours=23), True), (24, timedelta(hours=25), False), (48, timedelta(hours=47), True)],
)
def test_keys_are_kept_for_the_configured_hours_then_may_be_reused(
    storage: Storage,
    user: Headers,
    clock: Callable[[timedelta], None],
    ttl_hours: int,
    later: timedelta,
    replays: bool,
) -> None:
    app = create_app(
        Settings(database_url="memory", secret_key=TEST_SECRET, demo_data=False, idempotency_ttl_hours=ttl_hours)
    )
    app.dependency_overrides[get_db] = lambda: storage
    with TestClient(app) as client:
        first = create(client, user, BODY)
        clock(later)
        again = create(client, user, {"title": "Another body"})
        if replays:
            assert again.status_code == 422
            assert total(client, user) == 1
        else:
            assert again.status_code == 201
            assert again.json()["id"] != first.json()["id"]
            assert total(client, user) == 2
            clock(timedelta(0))  # back to the present: the key is now bound to the new request
            assert create(client, user, {"title": "Another body"}).json() == again.json()


def test_keys_cannot_be_kept_for_less_than_24_hours() -> None:
    with pytest.raises(ValidationError, match="idempotency_ttl_hours"):
        Settings(database_url="memory", secret_key=TEST_SECRET, idempotency_ttl_hours=23)


@pytest.fixture
def restarted_client(storage: Storage) -> Iterator[TestClient]:
    """A second app on a fresh SqlStore over the same database, as after a restart."""
    assert isinstance(storage, SqlStore)
    engine = create_db_engine(storage.engine.url.render_as_string(hide_password=False), 5)
    app = create_app(Settings(database_url="memory", secret_key=TEST_SECRET, demo_data=False))
    restarted = SqlStore(engine)
    app.dependency_overrides[get_db] = lambda: restarted
    with TestClient(app) as client:
        yield client
    engine.dispose()


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"], indirect=True)
def test_a_key_survives_a_restart(client: TestClient, user: Headers, restarted_client: TestClient) -> None:
    first = create(client, user, BODY)
    replay = create(restarted_client, user, BODY)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert create(restarted_client, user, {"title": "Other"}).status_code == 422
    assert total(restarted_client, user) == 1
