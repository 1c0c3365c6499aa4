"""Logins and registrations under load: limits that hold however many requests arrive at once,
and password hashing that never runs more than one Argon2 computation per core.

Every test runs on each storage backend; requests are sent from many threads at once.
"""

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

import auth
from settings import Settings
from storage import Storage
from tests.conftest import PASSWORD, assert_problem, make_settings, running
from tests.live_server import simultaneously, timed

SIMULTANEOUS = 60


def limited_client(storage: Storage, **limits: Any) -> Any:
    return running(make_settings(**limits), storage)


def log_in(client: TestClient, email: str, password: str, **options: Any) -> Response:
    return client.post("/auth/token", data={"username": email, "password": password}, **options)


def register(client: TestClient, email: str, **options: Any) -> Response:
    return client.post("/auth/register", json={"email": email, "password": PASSWORD}, **options)


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How many times Argon2 was asked to verify and to hash, counted around the test hasher."""
    counts: Counter[str] = Counter()
    hasher = auth.password_hasher

    class Counting:
        def verify(self, password: str, password_hash: str) -> bool:
            counts["verify"] += 1
            return hasher.verify(password, password_hash)

        def hash(self, password: str) -> str:
            counts["hash"] += 1
            return hasher.hash(password)

    monkeypatch.setattr(auth, "password_hasher", Counting())
    yield counts


def statuses(responses: list[Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def assert_too_many(response: Response) -> None:
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_simultaneous_wrong_passwords_for_one_account_are_checked_at_most_the_limit(
    storage: Storage, password_checks: Counter[str]
) -> None:
    with limited_client(storage, login_rate_limit="10/minute") as client:
        assert register(client, "target@example.com").status_code == 201
        responses = simultaneously(SIMULTANEOUS, lambda _: log_in(client, "target@example.com", "wrong-password"))
        assert statuses(responses) == {401: 10, 429: SIMULTANEOUS - 10}
        assert password_checks["verify"] == 10, "the refused attempts never reached Argon2"
        assert_too_many(next(response for response in responses if response.status_code == 429))
        assert log_in(client, "target@example.com", PASSWORD).status_code == 429, "even the right password waits"


def test_one_client_trying_many_emails_is_limited_across_them(storage: Storage, password_checks: Counter[str]) -> None:
    with (
        limited_client(storage, login_client_rate_limit="20/minute") as client,
        TestClient(client.app, client=("10.0.0.9", 50000)) as elsewhere,
    ):
        emails = [f"guess-{n}@example.com" for n in range(SIMULTANEOUS)]
        responses = simultaneously(SIMULTANEOUS, lambda n: log_in(client, emails[n], "wrong-password"))
        assert statuses(responses) == {401: 20, 429: SIMULTANEOUS - 20}
        assert password_checks["verify"] == 20
        assert_too_many(log_in(client, "yet-another@example.com", "wrong-password"))
        assert log_in(elsewhere, "yet-another@example.com", "wrong-password").status_code == 401


def test_successful_logins_do_not_count_against_either_limit(storage: Storage) -> None:
    with limited_client(storage, login_rate_limit="3/minute", login_client_rate_limit="3/minute") as client:
        assert register(client, "regular@example.com").status_code == 201
        assert [log_in(client, "regular@example.com", PASSWORD).status_code for _ in range(8)] == [200] * 8
        assert log_in(client, "regular@example.com", "wrong-password").status_code == 401


def test_registrations_are_limited_per_client(storage: Storage, password_checks: Counter[str]) -> None:
    with (
        limited_client(storage, register_rate_limit="3/minute") as client,
        TestClient(client.app, client=("10.0.0.9", 50000)) as elsewhere,
    ):
        responses = simultaneously(10, lambda n: register(client, f"new-{n}@example.com"))
        assert statuses(responses) == {201: 3, 429: 7}
        assert password_checks["hash"] == 3, "a refused registration costs no Argon2"
        assert_too_many(register(client, "one-more@example.com"))
        assert register(elsewhere, "one-more@example.com").status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", "a" * 309 + "@example.com"), ("password", "p" * 129)],
    ids=["username", "password"],
)
def test_overlong_login_fields_are_refused_before_counting_or_hashing(
    storage: Storage, password_checks: Counter[str], field: str, value: str
) -> None:
    with limited_client(storage, login_rate_limit="2/minute", login_client_rate_limit="2/minute") as client:
        assert register(client, "bounded@example.com").status_code == 201
        form = {"username": "bounded@example.com", "password": "wrong-password", field: value}
        for _ in range(5):
            response = client.post("/auth/token", data=form)
            assert_problem(response, 422)
            assert ["body", field] in [error["loc"] for error in response.json()["errors"]]
        assert password_checks["verify"] == 0
        assert log_in(client, "bounded@example.com", PASSWORD).status_code == 200, "nothing was counted"


# --- bounded hashing ---------------------------------------------------------


@pytest.fixture
def busy_hashing_threads() -> Iterator[threading.Event]:
    """Every hashing thread is busy until the returned event is set."""
    release = threading.Event()
    threads = auth.hashing_threads._max_workers
    started = threading.Barrier(threads + 1)

    def occupy() -> None:
        started.wait()
        release.wait(30)

    for _ in range(threads):
        auth.hashing_threads.submit(occupy)
    started.wait(5)
    yield release
    release.set()


def test_a_request_that_gets_no_hashing_turn_in_time_gets_503(
    storage: Storage, busy_hashing_threads: threading.Event
) -> None:
    settings: Settings = make_settings(storage_timeout_seconds=0.5)
    with running(settings, storage) as client:
        for request in (
            lambda: register(client, "waiting@example.com"),
            lambda: log_in(client, "waiting@example.com", PASSWORD),
        ):
            seconds, response = timed(request)
            assert_problem(response, 503)
            assert response.headers["Retry-After"].isdigit()
            assert 0.4 <= seconds <= 0.5 + 1
        busy_hashing_threads.set()
        assert register(client, "waiting@example.com").status_code == 201, "the refused turn never ran"


def test_at_most_one_argon2_computation_per_core_runs_at_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    running_now, most = 0, 0
    lock = threading.Lock()
    real_hash = auth.password_hasher.hash

    def slow_hash(password: str) -> str:
        nonlocal running_now, most
        with lock:
            running_now += 1
            most = max(most, running_now)
        time.sleep(0.05)
        with lock:
            running_now -= 1
        return real_hash(password)

    monkeypatch.setattr(auth.password_hasher, "hash", slow_hash)
    with running(make_settings(register_rate_limit="100/minute"), storage) as client:
        responses = simultaneously(16, lambda n: register(client, f"parallel-{n}@example.com"))
    assert statuses(responses) == {201: 16}
    assert most == (os.cpu_count() or 1)
