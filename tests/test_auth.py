"""Users and authentication (issue 2, point 1): register, token, /users/me, on every backend."""

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import jwt
import pytest
from fastapi.testclient import TestClient

from settings import Settings
from storage import Storage
from tests.conftest import PASSWORD, PROBLEM, TEST_SECRET, Headers, hash_passwords_with, login, make_settings, running

USER_FIELDS = {"id", "email", "is_admin", "created_at"}
BAD_CREDENTIALS = "Incorrect email or password"

Claims = dict[str, Any]


def register(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_unauthorized(response: Any) -> None:
    """A 401 as the contract wants it: a problem body and a Bearer challenge."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 401


# --- register ----------------------------------------------------------------


def test_register_returns_the_user_without_secrets(client: TestClient) -> None:
    response = client.post("/auth/register", json={"email": "Learner@Example.COM", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_FIELDS
    assert PASSWORD not in response.text and "argon2" not in response.text
    assert body["email"] == "learner@example.com"
    assert body["is_admin"] is False
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    me = client.get("/users/me", headers=login(client, "learner@example.com"))
    assert me.json() == body  # stored lower-cased, read back identically


def test_register_same_email_again_is_409(client: TestClient) -> None:
    """Emails are unique regardless of case, and a refused duplicate overwrites nothing."""
    register(client, "taken@example.com")
    for second in ("taken@example.com", "Taken@Example.COM"):
        response = client.post("/auth/register", json={"email": second, "password": "another-password"})
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"] == "A user with this email already exists"
    login(client, "taken@example.com")  # the original password still works


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, ["body", "email"]),
        ({"email": "a@", "password": PASSWORD}, ["body", "email"]),
        ({"email": "a@example.com", "password": "x" * 7}, ["body", "password"]),
        ({"email": "a@example.com", "password": "x" * 129}, ["body", "password"]),
        ({"email": "a@example.com", "password": 12345678}, ["body", "password"]),
        ({"email": "a@example.com"}, ["body", "password"]),
        ({"password": PASSWORD}, ["body", "email"]),
        ({"email": "a@example.com", "password": PASSWORD, "name": "Ann"}, ["body", "name"]),
        ({"email": "a@example.com", "password": PASSWORD, "is_admin": True}, ["body", "is_admin"]),
    ],
    ids=[
        "invalid-email",
        "no-domain",
        "password-7",
        "password-129",
        "password-not-string",
        "no-password",
        "no-email",
        "extra-field",
        "is-admin",
    ],
)
def test_register_invalid_body_is_422(client: TestClient, body: dict[str, Any], loc: list[str]) -> None:
    response = client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert loc in [error["loc"] for error in response.json()["errors"]]


@pytest.mark.parametrize("length", [8, 128])
def test_register_accepts_password_length_limits(client: TestClient, length: int) -> None:
    register(client, "edge@example.com", "p" * length)
    login(client, "edge@example.com", "p" * length)


def test_register_cannot_make_an_admin(client: TestClient) -> None:
    """`is_admin` in the body is refused outright, and creates no account at all."""
    body = {"email": "sneaky@example.com", "password": PASSWORD, "is_admin": True}
    assert client.post("/auth/register", json=body).status_code == 422
    assert client.post("/auth/token", data={"username": body["email"], "password": PASSWORD}).status_code == 401
    assert register(client, "sneaky@example.com")["is_admin"] is False


# --- token -------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [30, 7])
def test_token_is_a_bearer_token_with_its_lifetime(storage: Storage, minutes: int) -> None:
    """expires_in is ACCESS_TOKEN_EXPIRE_MINUTES in seconds, and matches the token's own exp."""
    settings: Settings = make_settings(access_token_expire_minutes=minutes)
    with running(settings, storage) as client:
        user = register(client, "timed@example.com")
        response = client.post("/auth/token", data={"username": "timed@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == minutes * 60
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user["id"])
    assert claims["exp"] - claims["iat"] == minutes * 60


def test_token_email_is_case_insensitive(client: TestClient) -> None:
    user = register(client, "Case@Example.com")
    headers = login(client, "CASE@example.COM")
    assert client.get("/users/me", headers=headers).json()["id"] == user["id"]


def test_unknown_email_and_wrong_password_look_the_same(client: TestClient) -> None:
    """One generic 401, so the answer never tells an attacker which emails exist."""
    register(client, "known@example.com")
    unknown = client.post("/auth/token", data={"username": "nobody@example.com", "password": PASSWORD})
    wrong = client.post("/auth/token", data={"username": "known@example.com", "password": "wrong-password"})
    for response in (unknown, wrong):
        assert_unauthorized(response)
    assert unknown.json()["detail"] == wrong.json()["detail"] == BAD_CREDENTIALS
    assert {k: v for k, v in unknown.json().items() if k != "request_id"} == {
        k: v for k, v in wrong.json().items() if k != "request_id"
    }


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"username": "someone@example.com", "password": PASSWORD}},
        {"data": {"username": "someone@example.com"}},
        {"data": {"password": PASSWORD}},
    ],
    ids=["json-body", "no-password", "no-username"],
)
def test_token_needs_the_password_form(client: TestClient, request_kwargs: dict[str, Any]) -> None:
    response = client.post("/auth/token", **request_kwargs)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_login_takes_as_long_for_unknown_email_as_for_wrong_password(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A security property: a faster 'unknown email' answer would let anyone enumerate accounts.
    The hashing costs ~20 ms here, not the suite's ~1 ms, so it outweighs a busy machine's noise."""
    hash_passwords_with(monkeypatch, time_cost=2, memory_cost=16384)
    register(client, "victim@example.com")
    durations: dict[str, list[float]] = {"unknown": [], "wrong": []}
    attempts = {"unknown": "ghost@example.com", "wrong": "victim@example.com"}
    for _ in range(5):  # interleaved, so machine noise hits both sides alike; 5 stays under the rate limit
        for kind, email in attempts.items():
            started = time.perf_counter()
            response = client.post("/auth/token", data={"username": email, "password": "not-the-password"})
            durations[kind].append(time.perf_counter() - started)
            assert response.status_code == 401
    ratio = statistics.median(durations["unknown"]) / statistics.median(durations["wrong"])
    assert 0.5 < ratio < 2.0, durations


# --- /users/me ---------------------------------------------------------------


def test_users_me_returns_the_caller(client: TestClient) -> None:
    user = register(client, "me@example.com")
    response = client.get("/users/me", headers=login(client, "me@example.com"))
    assert response.status_code == 200
    assert response.json() == user


# A token's subject: the user id and the account's token key.
Who = tuple[int | str, str]


def _claims(who: Who, **changes: Any) -> Claims:
    now = datetime.now(UTC)
    user_id, key = who
    claims: Claims = {"sub": str(user_id), "key": key, "iat": now, "exp": now + timedelta(minutes=5), **changes}
    return {name: value for name, value in claims.items() if value is not None}


def _signed(claims: Claims, key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _with_payload_of(token: str, other: str) -> str:
    """`token`'s header and signature around `other`'s claims: a forged payload."""
    header, _, signature = token.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


_LATER = datetime.now(UTC) + timedelta(days=365)
_ABSURD = 10**400  # JSON allows it; a float() of it overflows

# Each builds an Authorization header value for a real account that must still be refused.
BAD_TOKENS: dict[str, Callable[[Who], str | None]] = {
    "no-token": lambda _: None,
    "malformed": lambda _: "Bearer not.a.jwt",
    "garbage": lambda _: "Bearer hello",
    "not-bearer": lambda who: f"Basic {_signed(_claims(who))}",
    "expired": lambda who: (
        "Bearer "
        + _signed(_claims(who, iat=datetime.now(UTC) - timedelta(hours=2), exp=datetime.now(UTC) - timedelta(hours=1)))
    ),
    "other-key": lambda who: "Bearer " + _signed(_claims(who), key="another-secret-key-that-is-long-enough-too"),
    "alg-none": lambda who: "Bearer " + jwt.encode(_claims(who), None, algorithm="none"),
    "alg-hs512": lambda who: "Bearer " + _signed(_claims(who), algorithm="HS512"),
    "no-exp": lambda who: "Bearer " + _signed(_claims(who, exp=None)),
    "no-iat": lambda who: "Bearer " + _signed(_claims(who, iat=None)),
    "no-sub": lambda who: "Bearer " + _signed(_claims(who, sub=None)),
    "no-key": lambda who: "Bearer " + _signed(_claims(who, key=None)),
    "wrong-key": lambda who: "Bearer " + _signed(_claims((who[0], "another-accounts-key"))),
    "key-not-a-string": lambda who: "Bearer " + _signed(_claims((who[0], 12345))),  # type: ignore[arg-type]
    "absurd-exp": lambda who: "Bearer " + _signed(_claims(who, exp=_ABSURD)),
    "absurd-iat": lambda who: "Bearer " + _signed(_claims(who, iat=_ABSURD)),
    "negative-absurd-iat": lambda who: "Bearer " + _signed(_claims(who, iat=-_ABSURD)),
    "longer-than-issued": lambda who: "Bearer " + _signed(_claims(who, exp=_LATER)),
    "sub-not-an-id": lambda who: "Bearer " + _signed(_claims(("alice", who[1]))),
    "unknown-user": lambda who: "Bearer " + _signed(_claims((999999, who[1]))),
    "sub-zero": lambda who: "Bearer " + _signed(_claims((0, who[1]))),
    "sub-negative": lambda who: "Bearer " + _signed(_claims((-1, who[1]))),
    "sub-beyond-int64": lambda who: "Bearer " + _signed(_claims((10**20, who[1]))),
    "tampered": lambda who: "Bearer " + _with_payload_of(_signed(_claims(who)), _signed(_claims(who, exp=_LATER))),
}


@pytest.fixture
def target(storage: Storage) -> Who:
    """An existing account, made directly: these tests need a real one, not an Argon2 hash."""

    async def create() -> Who:
        await storage.create_user("target@example.com", "unused-hash")
        credentials = await storage.get_credentials("target@example.com")
        assert credentials is not None
        return credentials.user.id, credentials.token_key

    return anyio.run(create)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 with the HS256 test key
@pytest.mark.parametrize("make_header", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_users_me_refuses_bad_tokens(client: TestClient, target: Who, make_header: Callable[[Who], str | None]) -> None:
    good = {"Authorization": "Bearer " + _signed(_claims(target))}
    assert client.get("/users/me", headers=good).json()["id"] == target[0]  # the same recipe, done right, passes
    header = make_header(target)
    response = client.get("/users/me", headers={"Authorization": header} if header else {})
    assert_unauthorized(response)
    assert set(response.json()) >= {"type", "title", "status", "detail", "instance", "request_id"}


def test_a_token_accepted_before_is_refused_once_it_expires(client: TestClient, target: Who) -> None:
    """The expiry applies on every use, not only on the first."""
    expires_at = int(time.time()) + 2  # JWT expiry has whole-second resolution
    token = _signed(_claims(target, exp=expires_at))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/users/me", headers=headers).status_code == 200
    time.sleep(expires_at - time.time() + 0.05)
    assert_unauthorized(client.get("/users/me", headers=headers))


def test_tokens_are_bound_to_the_secret_key(storage: Storage) -> None:
    """Tokens are bound to SECRET_KEY: rotating it logs everyone out."""
    with running(make_settings(), storage) as client:
        register(client, "rotate@example.com")
        headers: Headers = login(client, "rotate@example.com")
        assert client.get("/users/me", headers=headers).status_code == 200
    with running(make_settings(secret_key="a-brand-new-secret-key-of-sufficient-length"), storage) as client:
        assert_unauthorized(client.get("/users/me", headers=headers))
