"""Request ids, timing, access log, security headers, CORS, body limits, non-JSON bodies, login throttle.

Every test runs on each storage backend (none of this may depend on the storage). The body
limit is proven twice: at the ASGI boundary with an endless body whose chunks are counted,
and against a live uvicorn server over a raw socket with a chunked body that never ends.
"""

import http.client
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import Message

from main import create_app
from settings import Settings
from storage import Storage, get_db
from tests.conftest import PASSWORD, TEST_SECRET, Headers, MakeTask, assert_problem

ALLOWED_ORIGIN = "http://localhost:3000"
OTHER_ORIGIN = "https://evil.example"
DEFAULT_LIMIT = 1_048_576
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
SERVER_TIMING = re.compile(r"app;dur=\d+(\.\d+)?")
SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
LEAK = "boom: SELECT password_hash FROM users"  # an internal message that must never reach a client


def build_app(storage: Storage, **options: Any) -> FastAPI:
    """An app with non-default settings, on the test's storage (so it runs on every backend)."""
    app = create_app(Settings(database_url="memory", secret_key=TEST_SECRET, demo_data=False, **options))
    app.dependency_overrides[get_db] = lambda: storage
    return app


class BrokenStorage:
    """A storage whose every call fails like a bug would, with internals in the message."""

    kind = "memory"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def fail(*_: Any, **__: Any) -> None:
            raise RuntimeError(LEAK)

        return fail


def json_body(size: int) -> bytes:
    """A valid task body of exactly `size` bytes (its description is too long, so it is a 422)."""
    frame = b'{"title": "big", "description": ""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


def every_kind_of_response(app: FastAPI, client: TestClient, user: Headers) -> dict[str, Response]:
    """One response of each kind the API gives, each sent with `X-Request-ID: kind-<name>`."""

    def send(name: str, method: str, url: str, headers: Headers | None = None, **options: Any) -> Response:
        return client.request(method, url, headers={**(headers or {}), "X-Request-ID": f"kind-{name}"}, **options)

    created = send("201", "POST", "/tasks", user, json={"title": "Probe"})
    url, etag = created.headers["Location"], created.headers["ETag"]
    responses = {
        "201": created,
        "200": send("200", "GET", "/health"),
        "200-auth": send("200-auth", "GET", url, user),
        "304": send("304", "GET", url, {**user, "If-None-Match": etag}),
        "401": send("401", "GET", "/tasks"),
        "404": send("404", "GET", "/tasks/999999", user),
        "404-route": send("404-route", "GET", "/nowhere", user),
        "405": send("405", "POST", "/health"),
        "412": send("412", "PATCH", url, {**user, "If-Match": '"0-0"'}, json={"priority": 2}),
        "413": send("413", "POST", "/tasks", {**user, "Content-Type": "application/json"}, content=b" " * 2_000_000),
        "422": send("422", "POST", "/tasks", user, json={}),
        "preflight": send(
            "preflight", "OPTIONS", "/tasks", {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "PATCH"}
        ),
        "preflight-refused": send(
            "preflight-refused", "OPTIONS", "/tasks", {"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "PATCH"}
        ),
        "docs": send("docs", "GET", "/docs"),
        "static": send("static", "GET", "/static/swagger-ui.css"),
    }
    working = app.dependency_overrides[get_db]
    app.dependency_overrides[get_db] = BrokenStorage
    try:
        responses["500"] = send("500", "GET", "/ready")
    finally:
        app.dependency_overrides[get_db] = working
    return responses


def test_every_response_has_a_request_id_timing_and_security_headers(
    app: FastAPI, client: TestClient, user: Headers
) -> None:
    for name, response in every_kind_of_response(app, client, user).items():
        assert response.headers["X-Request-ID"] == f"kind-{name}"
        assert SERVER_TIMING.fullmatch(response.headers["Server-Timing"]), (name, response.headers["Server-Timing"])
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header)


def test_every_problem_body_carries_the_request_id_and_a_500_leaks_nothing(
    app: FastAPI, client: TestClient, user: Headers
) -> None:
    responses = every_kind_of_response(app, client, user)
    problems = {name: response for name, response in responses.items() if response.status_code >= 400}
    assert {response.status_code for response in problems.values()} == {400, 401, 404, 405, 412, 413, 422, 500}
    for name, response in problems.items():
        assert response.headers["content-type"] == "application/problem+json", name
        body = response.json()
        assert body["status"] == response.status_code
        assert body["request_id"] == response.headers["X-Request-ID"] == f"kind-{name}"
    assert "boom" not in responses["500"].text and "SELECT" not in responses["500"].text
    assert responses["500"].json()["detail"] == "An unexpected error occurred; it has been logged"


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The access-log lines logged so far, parsed (the `tasks` logger may not propagate to root)."""
    logger = logging.getLogger("tasks.access")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    previous_level = logger.level
    logger.setLevel(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        records = [record for record in caplog.records if record.name == "tasks.access"]
        unique = list(dict.fromkeys(records))  # the same record may also arrive through root
        return [json.loads(record.getMessage()) for record in unique]

    yield lines
    logger.removeHandler(caplog.handler)
    logger.setLevel(previous_level)


def test_one_json_access_log_line_per_request(
    app: FastAPI, client: TestClient, user: Headers, access_log: Callable[[], list[dict[str, Any]]]
) -> None:
    me = client.get("/users/me", headers=user).json()["id"]
    responses = every_kind_of_response(app, client, user)
    lines = access_log()
    for name, response in responses.items():
        mine = [line for line in lines if line["request_id"] == f"kind-{name}"]
        assert len(mine) == 1, (name, mine)
        (line,) = mine
        assert line["method"] == response.request.method
        assert line["path"] == response.request.url.path
        assert line["status"] == response.status_code
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
        authenticated = name in {"201", "200-auth", "304", "404", "412", "422"}
        assert line["user_id"] == (me if authenticated else None), name


SANE_IDS = ["a", "req-42.retry_1", "Z" * 128]
INSANE_IDS: list[str | bytes] = ["x" * 129, "has space", "tab\there", "ünïcode".encode(), "", "semi;colon"]


def test_a_sane_request_id_is_echoed_and_anything_else_replaced(client: TestClient) -> None:
    for offered in [*SANE_IDS, *INSANE_IDS]:
        for url in ("/health", "/nowhere"):
            raw = offered if isinstance(offered, bytes) else offered.encode()
            response = client.get(url, headers={b"x-request-id": raw})
            answered = response.headers["X-Request-ID"]
            if offered in SANE_IDS:
                assert answered == offered
            else:
                assert answered != offered and SANE_ID.fullmatch(answered), (offered, answered)
            if response.status_code == 404:
                assert response.json()["request_id"] == answered
    generated = {client.get("/health").headers["X-Request-ID"] for _ in range(5)}
    assert len(generated) == 5, "generated ids must be unique"


# --- CORS --------------------------------------------------------------------


def test_a_preflight_from_an_allowed_origin_succeeds_with_credentials(client: TestClient) -> None:
    response = client.options(
        "/tasks/1",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    assert "If-Match" in response.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    "headers",
    [{"Access-Control-Request-Method": "POST"}, {"Access-Control-Request-Method": "DELETE"}],
)
def test_a_preflight_from_another_origin_is_refused_as_a_problem(client: TestClient, headers: Headers) -> None:
    response = client.options("/tasks", headers={"Origin": OTHER_ORIGIN, **headers})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_simple_requests_get_cors_headers_only_for_allowed_origins(client: TestClient, user: Headers) -> None:
    allowed = client.get("/tasks", headers={**user, "Origin": ALLOWED_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "X-Total-Count" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.get("/tasks", headers={**user, "Origin": OTHER_ORIGIN})
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_wildcard_origin_is_never_combined_with_credentials(storage: Storage) -> None:
    """CORS_ORIGINS=* opens the API to every site, so credentials are switched off rather than echoed."""
    with TestClient(build_app(storage, cors_origins="*")) as client:
        for response in (
            client.options("/tasks", headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"}),
            client.get("/health", headers={"Origin": OTHER_ORIGIN, "Cookie": "session=1"}),
        ):
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in response.headers


# --- body limits and body types ----------------------------------------------

BODY_ROUTES = [("POST", "/tasks"), ("PUT", "/tasks/1"), ("PATCH", "/tasks/1"), ("POST", "/auth/register")]


@pytest.mark.parametrize(("method", "url"), BODY_ROUTES)
def test_a_declared_body_over_the_limit_is_413_and_one_at_the_limit_is_not(
    client: TestClient, user: Headers, method: str, url: str
) -> None:
    headers = {**user, "Content-Type": "application/json"}
    over = client.request(method, url, content=json_body(DEFAULT_LIMIT + 1), headers=headers)
    assert over.status_code == 413
    assert over.headers["content-type"] == "application/problem+json"
    assert str(DEFAULT_LIMIT) in over.json()["detail"]
    at_limit = client.request(method, url, content=json_body(DEFAULT_LIMIT), headers=headers)
    assert at_limit.status_code in (404, 422), at_limit.text[:200]


def test_a_login_form_over_the_limit_is_413(storage: Storage) -> None:
    with TestClient(build_app(storage, max_body_bytes=100)) as client:
        response = client.post("/auth/token", data={"username": "a@example.com", "password": "p" * 100})
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"


LIMIT, CHUNK = 1000, 100


def endless_body_request(token: str) -> tuple[dict[str, Any], Callable[[], Any], list[int]]:
    """An ASGI scope for POST /tasks and a `receive` whose body goes on and on; `consumed[0]` counts chunks."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/tasks",
        "raw_path": b"/tasks",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "state": {},
    }
    consumed = [0]

    async def receive() -> Message:
        await anyio.lowlevel.checkpoint()
        consumed[0] += 1
        # Ends only far past the limit, so a server that reads everything fails instead of hanging.
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": consumed[0] < 100 * LIMIT // CHUNK}

    return scope, receive, consumed


def test_a_streamed_body_is_refused_at_the_first_chunk_past_the_limit(storage: Storage, user: Headers) -> None:
    """The app must stop reading at the chunk that crosses the limit, not buffer the whole body."""
    app = build_app(storage, max_body_bytes=LIMIT)
    scope, receive, consumed = endless_body_request(user["Authorization"].removeprefix("Bearer "))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        with anyio.fail_after(1):
            await app(scope, receive, send)

    anyio.run(call)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert consumed[0] == LIMIT // CHUNK + 1, "the app read past the chunk that crossed the limit"
    body = json.loads(b"".join(message.get("body", b"") for message in sent[1:]))
    assert body["status"] == 413


@contextmanager
def live_server(app: FastAPI) -> Iterator[int]:
    """Serve `app` with uvicorn on a free port in a thread; yields the port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5  # only reached if the server never starts
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=1)


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    assert response.getheader("Content-Type") == "application/problem+json"
    problem: dict[str, Any] = json.loads(response.read())
    return response.status, problem


def request_head(port: int, token: str, framing: str) -> bytes:
    return (
        f"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.mark.slow
def test_a_live_server_cuts_off_a_chunked_body_that_never_ends(storage: Storage, user: Headers) -> None:
    token = user["Authorization"].removeprefix("Bearer ")
    with (
        live_server(build_app(storage, max_body_bytes=LIMIT)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
    ):
        sock.sendall(request_head(port, token, "Transfer-Encoding: chunked"))
        sent = 0
        while sent <= LIMIT:
            sock.sendall(b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK))
            sent += CHUNK
        # The terminating chunk is never sent: an answer now means the server stopped reading.
        readable, _, _ = select.select([sock], [], [], 1)
        assert readable, "no answer: the server is still waiting for the rest of the body"
        status, problem = read_response(sock)
    assert status == 413
    assert problem["status"] == 413
    assert sent == LIMIT + CHUNK


@pytest.mark.slow
def test_a_live_server_refuses_a_declared_length_before_any_body_arrives(storage: Storage, user: Headers) -> None:
    token = user["Authorization"].removeprefix("Bearer ")
    with (
        live_server(build_app(storage, max_body_bytes=LIMIT)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
    ):
        sock.sendall(request_head(port, token, "Content-Length: 100000000"))
        readable, _, _ = select.select([sock], [], [], 1)
        assert readable, "no answer before the body was sent"
        status, problem = read_response(sock)
    assert status == 413
    assert problem["status"] == 413


NOT_JSON: list[tuple[str, bytes]] = [
    ("text/plain", b'{"title": "Looks like JSON"}'),
    ("application/x-www-form-urlencoded", b"title=Form+data"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--xyz--'),
    ("application/json", b'{"title": "unterminated'),
    ("application/json", b"\xff\xfe not utf-8"),
    ("application/json", b'["a", "list"]'),
    ("application/json", b""),
]


@pytest.mark.parametrize(("method", "url"), BODY_ROUTES)
def test_a_body_that_is_not_json_is_415_or_422(
    client: TestClient, user: Headers, make_task: MakeTask, method: str, url: str
) -> None:
    task = make_task()
    url = url.replace("/1", f"/{task['id']}")
    for content_type, content in NOT_JSON:
        response = client.request(method, url, content=content, headers={**user, "Content-Type": content_type})
        assert response.status_code in (415, 422), (content_type, content, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"/tasks/{task['id']}", headers=user).json() == task, "nothing was changed"
    assert client.get("/tasks", headers=user).json()["total"] == 1, "nothing was created"


# --- login rate limit --------------------------------------------------------


def test_failed_logins_are_limited_per_client_and_email(storage: Storage) -> None:
    """3/minute: successes do not count; other emails and other clients are unaffected."""
    app = build_app(storage, login_rate_limit="3/minute")
    with TestClient(app) as client, TestClient(app, client=("10.0.0.2", 50000)) as elsewhere:

        def login(email: str, password: str, via: TestClient = client) -> Response:
            return via.post("/auth/token", data={"username": email, "password": password})

        for email in ("limited@example.com", "neighbour@example.com"):
            assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
        assert login("limited@example.com", "wrong-password").status_code == 401
        assert login("LIMITED@example.com", "wrong-password").status_code == 401  # the same account
        assert login("limited@example.com", PASSWORD).status_code == 200  # a success does not count
        assert login("limited@example.com", "wrong-password").status_code == 401  # the third failure
        refused = login("limited@example.com", PASSWORD)
        assert refused.status_code == 429, "even the right password waits out the window"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        assert refused.json()["request_id"] == refused.headers["X-Request-ID"]
        assert refused.headers["Retry-After"].isdigit() and 1 <= int(refused.headers["Retry-After"]) <= 60
        assert login("neighbour@example.com", PASSWORD).status_code == 200
        assert login("neighbour@example.com", "wrong-password").status_code == 401
        assert login("limited@example.com", PASSWORD, elsewhere).status_code == 200


def test_an_unreachable_rate_limit_store_refuses_logins_with_503(storage: Storage) -> None:
    """Redis down (nothing listens on port 1): logins and registrations are refused, never let through unthrottled."""
    app = build_app(storage, rate_limit_storage="redis://127.0.0.1:1/0")
    with TestClient(app) as client:
        refused = [
            client.post("/auth/register", json={"email": "nolimit@example.com", "password": PASSWORD}),
            client.post("/auth/token", data={"username": "nolimit@example.com", "password": PASSWORD}),
        ]
        for response in refused:
            assert_problem(response, 503)
            assert response.headers["Retry-After"].isdigit()
        assert client.get("/health").status_code == 200


# --- performance guard -------------------------------------------------------


def test_no_middleware_is_a_base_http_middleware(app: FastAPI, client: TestClient) -> None:
    """BaseHTTPMiddleware costs most of the throughput; every layer must be pure ASGI."""
    assert len(app.user_middleware) == 3
    assert not [entry.cls for entry in app.user_middleware if issubclass(entry.cls, BaseHTTPMiddleware)]  # type: ignore[arg-type]
    layer: Any = app.middleware_stack
    seen = []
    while layer is not None and not isinstance(layer, FastAPI | type(app.router)):
        seen.append(type(layer).__name__)
        assert not isinstance(layer, BaseHTTPMiddleware), seen
        layer = getattr(layer, "app", None)
    assert {"RequestContextMiddleware", "ProblemCORSMiddleware", "BodySizeLimitMiddleware"} <= set(seen)
