"""The README is executed, so it cannot drift from the API.

The ```sh block under "## Try it with curl" runs, as written, in one bash session against a
real server (only its base URL is rewritten to the test server's). Each step is a comment
followed by its commands; the comment's "(201 Created)"-style notes are the statuses its
curl calls must return, in order, and "with X and Y headers" names headers the response
must carry. A step without a documented status fails the test, as does a missing block.
The troubleshooting section's claims are checked against the same server.
"""

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import TEST_SECRET
from tests.live_server import ROOT, LiveServer, live_server

README = ROOT / "README.md"
README_BASE_URL = "http://127.0.0.1:8000"
WALKTHROUGH = "## Try it with curl"
TROUBLESHOOTING = "## Troubleshooting"
MARK = "@@step"
STATUS = "@@status"
# Every curl call reports its status on stderr; the README's own output options are untouched.
CURL_WRAPPER = f"curl() {{ command curl -w '%{{stderr}}{STATUS} %{{http_code}}\\n' \"$@\"; }}"
# The walkthrough: register -> token -> create -> list -> patch -> delete, in this order.
REQUIRED_CALLS = [
    "POST /auth/register",
    "POST /auth/token",
    "POST /tasks",
    "GET /tasks",
    "PATCH /tasks/",
    "DELETE /tasks/",
]
ALICE = ("alice@example.com", "alice-password")


@dataclass(frozen=True)
class Step:
    """One commented group of commands from the walkthrough."""

    comment: str
    script: str
    statuses: list[int]
    headers: list[str]


def section(heading: str) -> str:
    """The README text under `heading`, up to the next level-2 heading."""
    text = README.read_text()
    start = text.find(f"\n{heading}\n")
    assert start >= 0, f"README.md has no {heading!r} section"
    end = text.find("\n## ", start + len(heading) + 2)
    return text[start : end if end >= 0 else len(text)]


def walkthrough_block() -> str:
    match = re.search(r"^```sh\n(.*?)^```$", section(WALKTHROUGH), re.DOTALL | re.MULTILINE)
    assert match, f"README.md's {WALKTHROUGH!r} section has no ```sh block"
    return match.group(1)


def documented_statuses(comment: str) -> list[int]:
    """'(204 No Content), then it is gone (404 Not Found)' -> [204, 404]; the phrase must be right."""
    found = re.findall(r"\((\d{3}) ([A-Za-z][A-Za-z -]*?)[,)]", comment)
    for code, phrase in found:
        assert HTTPStatus(int(code)).phrase == phrase, f"README says {code} {phrase!r}: {comment}"
    return [int(code) for code, _ in found]


def documented_headers(comment: str) -> list[str]:
    """'with Location and ETag headers' -> ['Location', 'ETag']."""
    match = re.search(r"with (.+?) headers", comment)
    return [name for name in re.findall(r"[\w-]+", match.group(1)) if name != "and"] if match else []


def parse_steps(block: str) -> list[Step]:
    """Split the block into steps: a comment starts a step once the previous one has commands."""
    groups: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith("#"):
            if not groups or groups[-1][1]:
                groups.append(([], []))
            groups[-1][0].append(line.lstrip("# "))
        elif line.strip():
            assert groups, f"the walkthrough must start with a comment, not {line!r}"
            groups[-1][1].append(line)
    return [
        Step(" ".join(c), "\n".join(s), documented_statuses(" ".join(c)), documented_headers(" ".join(c)))
        for c, s in groups
    ]


def bash_script(steps: list[Step], base_url: str) -> str:
    """One bash session for all steps (TOKEN and TASK_ID carry over), each step announced on its own line."""
    lines = ["set -euo pipefail", CURL_WRAPPER]
    for number, step in enumerate(steps):
        lines += [
            f"printf '\\n{MARK} {number}\\n'; printf '\\n{MARK} {number}\\n' >&2",
            step.script.replace(README_BASE_URL, base_url),
        ]
    return "\n".join(lines) + "\n"


def split_by_step(output: str) -> dict[int, str]:
    parts = re.split(rf"^{MARK} (\d+)$", output, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A fresh server as `make run` starts it (in memory, demo data), signing with a known key."""
    env = {"DATABASE_URL": "memory", "DEMO_DATA": "true", "SECRET_KEY": TEST_SECRET}
    with live_server(env, tmp_path_factory.mktemp("readme")) as running:
        yield running


def test_walkthrough_covers_the_whole_crud_cycle() -> None:
    """Every step documents its status, and the block still walks register -> ... -> delete."""
    steps = parse_steps(walkthrough_block())
    assert [step.comment for step in steps if not step.statuses] == [], "every step must document its status"
    calls = []
    for step in steps:
        for command in re.split(r"\n(?=\S)", step.script):  # continuation lines are indented
            method = re.search(r"-X (\w+)", command)
            path = re.search(re.escape(README_BASE_URL) + r"(/[\w/]*)", command)
            assert path, f"every command calls the API at {README_BASE_URL}: {command}"
            calls.append(f"{method.group(1) if method else 'GET'} {path.group(1)}")
    remaining = iter(calls)
    assert all(any(call.startswith(required) for call in remaining) for required in REQUIRED_CALLS), calls


@pytest.mark.slow
def test_curl_walkthrough_runs_as_documented(server: LiveServer) -> None:
    """Run the block verbatim: each step's curl calls answer exactly the documented statuses."""
    block = walkthrough_block()
    assert README_BASE_URL in block
    steps = parse_steps(block)
    script = bash_script(steps, server.base_url)
    assert not re.search(r"localhost|:8000\b", script), "a command would escape the test server"

    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False)
    stdout, stderr = split_by_step(result.stdout), split_by_step(result.stderr)

    expected = [(step.comment, step.statuses) for step in steps]
    actual = [
        (step.comment, [int(s) for s in re.findall(rf"^{STATUS} (\d+)$", stderr.get(n, ""), re.M)])
        for n, step in enumerate(steps)
    ]
    assert actual == expected, f"bash exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    for number, step in enumerate(steps):
        shown = {line.split(":", 1)[0].lower() for line in stdout[number].splitlines() if ":" in line}
        missing = [name for name in step.headers if name.lower() not in shown]
        assert missing == [], f"{step.comment}: headers missing from\n{stdout[number]}"


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> dict[str, str]:
    """A demo user's auth headers, logged in the way the README shows."""
    response = httpx.post(f"{server.base_url}/auth/token", data={"username": ALICE[0], "password": ALICE[1]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "body", "success"),
    [
        ("POST", "/tasks", '{"title": "From the troubleshooting section"}', 201),
        ("PUT", "/tasks/{id}", '{"title": "Replaced", "priority": 2}', 200),
        ("PATCH", "/tasks/{id}", '{"status": "completed"}', 200),
    ],
)
def test_troubleshooting_missing_content_type_is_422(
    server: LiveServer, alice: dict[str, str], method: str, path: str, body: str, success: int
) -> None:
    """'422 on a POST/PUT/PATCH whose JSON looks right': the header is the only difference."""
    assert "`Content-Type: application/json`" in section(TROUBLESHOOTING)
    with httpx.Client(base_url=server.base_url, headers=alice) as client:
        task_id = client.get("/tasks").json()["items"][0]["id"]
        url = path.format(id=task_id)
        before = client.get("/tasks").json()
        without = client.request(method, url, content=body.encode())
        assert without.status_code == 422, without.text
        assert without.headers["content-type"] == "application/problem+json"
        assert client.get("/tasks").json() == before  # refused whole: nothing created or changed
        with_header = client.request(method, url, content=body.encode(), headers={"Content-Type": "application/json"})
        assert with_header.status_code == success, with_header.text


@pytest.mark.slow
def test_troubleshooting_expired_token_is_401(server: LiveServer, alice: dict[str, str]) -> None:
    """'401 after a while': the same user's token, once past its `exp`, is refused with a Bearer challenge."""
    assert "ACCESS_TOKEN_EXPIRE_MINUTES" in section(TROUBLESHOOTING)
    me = httpx.get(f"{server.base_url}/users/me", headers=alice)
    assert me.status_code == 200
    past = int(time.time()) - 3600
    expired = jwt.encode({"sub": str(me.json()["id"]), "iat": past, "exp": past + 60}, TEST_SECRET, algorithm="HS256")
    response = httpx.get(f"{server.base_url}/tasks", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_troubleshooting_port_in_use_says_address_already_in_use(server: LiveServer, tmp_path: Path) -> None:
    """`make run` (uvicorn --reload) on a taken port fails with the message the README tells learners to look for."""
    assert "`address already in use`" in section(TROUBLESHOOTING)
    port = server.base_url.rsplit(":", 1)[1]
    second = subprocess.run(
        [sys.executable, "-m", "uvicorn", "main:app", "--reload", "--app-dir", str(ROOT), "--port", port],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "memory", "DEMO_DATA": "false", "SECRET_KEY": TEST_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "address already in use" in second.stderr.lower(), second.stderr  # "[Errno 98] Address already in use"
    assert httpx.get(f"{server.base_url}/health").status_code == 200  # the first server is untouched
