"""Limits on a real server, started by the commands the Makefile and the Dockerfile give.

The client address the limits count is the connection's peer: rotating `X-Forwarded-For`
or `Forwarded` from 127.0.0.1 must not make one client look like many, unless
FORWARDED_ALLOW_IPS names 127.0.0.1 as a trusted proxy. Real Argon2 (not the tests' cheap
one) shows that a burst of registrations or bad logins cannot balloon a worker's memory.
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.live_server import ROOT, app_env, live_server, simultaneously

pytestmark = pytest.mark.slow

MAX_PEAK_RSS_MB = 600


def make_run(port: int) -> list[str]:
    """`make run`, as the README tells a learner to start the API."""
    return ["make", "-s", "-C", str(ROOT), "run", f"PORT={port}"]


COMMANDS: dict[str, Callable[[int], list[str]] | None] = {"dockerfile": None, "makefile": make_run}


def spoofed(n: int) -> dict[str, str]:
    """Headers that claim a different client on every request."""
    return {"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=198.51.100.{n}"}


def rotating_attempts(client: httpx.Client) -> tuple[list[int], int, list[int]]:
    """Wrong passwords and registrations, each claiming a new client address."""
    assert client.post("/auth/register", json={"email": "victim@example.com", "password": PASSWORD}).status_code == 201
    wrong = {"username": "victim@example.com", "password": "wrong-password"}
    logins = [client.post("/auth/token", data=wrong, headers=spoofed(n)).status_code for n in range(6)]
    right = {"username": "victim@example.com", "password": PASSWORD}
    last = client.post("/auth/token", data=right, headers=spoofed(99)).status_code
    registrations = [
        client.post("/auth/register", json={"email": f"r{n}@example.com", "password": PASSWORD}, headers=spoofed(n))
        for n in range(4)
    ]
    return logins, last, [response.status_code for response in registrations]


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_rotating_forwarded_headers_does_not_reset_any_limit(
    command: Callable[[int], list[str]] | None, tmp_path: Path
) -> None:
    env = app_env("memory", LOGIN_RATE_LIMIT="3/minute", REGISTER_RATE_LIMIT="3/minute")
    with live_server(env, tmp_path, command=command) as server, server.client() as client:
        logins, last, registrations = rotating_attempts(client)
    assert logins == [401, 401, 401, 429, 429, 429]
    assert last == 429, "the right password still waits: it is the same client"
    assert registrations == [201, 201, 429, 429]  # the victim's registration took the first place


def test_a_named_proxy_is_trusted_for_the_client_address(tmp_path: Path) -> None:
    """The control: with 127.0.0.1 named as a proxy, each forwarded address is its own client."""
    env = app_env("memory", LOGIN_RATE_LIMIT="3/minute", FORWARDED_ALLOW_IPS="127.0.0.1")
    with live_server(env, tmp_path) as server, server.client() as client:
        logins, last, _ = rotating_attempts(client)
    assert logins == [401] * 6
    assert last == 200


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


@pytest.mark.parametrize("burst", ["registrations", "bad logins"])
def test_80_simultaneous_argon2_requests_keep_the_worker_small(burst: str, tmp_path: Path) -> None:
    limits = {"REGISTER_RATE_LIMIT": "1000/minute", "LOGIN_CLIENT_RATE_LIMIT": "1000/minute"}
    env = app_env("memory", STORAGE_TIMEOUT_SECONDS="60", **limits)
    with live_server(env, tmp_path) as server, server.client(timeout=90) as client:

        def send(n: int) -> int:
            if burst == "registrations":
                body = {"email": f"burst-{n}@example.com", "password": PASSWORD}
                return client.post("/auth/register", json=body).status_code
            form = {"username": f"burst-{n}@example.com", "password": "wrong-password"}
            return client.post("/auth/token", data=form).status_code

        answers = Counter(simultaneously(80, send))
        peak = peak_rss_mb(server.process.pid)
    print(f"80 simultaneous {burst}: {dict(answers)}, worker peak RSS {peak:.0f} MB")
    assert answers == {201 if burst == "registrations" else 401: 80}
    assert peak < MAX_PEAK_RSS_MB
