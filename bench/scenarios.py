"""What each benchmark scenario sends. Paths that need a live server (cursors) are resolved at start."""

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bench.dataset import FILTER_QUERY
from bench.servers import request

PAGE = 20
NEW_TASK = {
    "title": "Benchmark task",
    "description": "Created by wrk",
    "status": "pending",
    "priority": 3,
    "due_date": "2026-12-01",
    "tags": ["bench", "load"],
}
PATCH_BODY = {"status": "in_progress", "priority": 4}
STANDARD_NAMES = ("get", "filtered", "offset", "cursor", "post", "patch")
PATCH_BLOCK = 1000  # tasks per wrk run in PATCH mode; each run gets fresh ones, all still at version 1


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    path: str
    method: str = "GET"
    body: str | None = None
    expected: int = 200
    patch_first: int | None = None  # PATCH mode: the first task id of run 0's block

    def wrk_env(self, token: str, run: int) -> dict[str, str]:
        """bench.lua's configuration for the `run`-th wrk invocation of this scenario."""
        env = {"BENCH_METHOD": self.method}
        if token:
            env["BENCH_TOKEN"] = token
        if self.body is not None:
            env["BENCH_BODY"] = self.body
        if self.patch_first is not None:
            env["BENCH_PATCH_FIRST"] = str(self.patch_first + run * PATCH_BLOCK)
            env["BENCH_PATCH_COUNT"] = str(PATCH_BLOCK)
        return env


FILTERED = Scenario("filtered", f"GET filtered page ({FILTER_QUERY})", f"/tasks?{FILTER_QUERY}&limit={PAGE}")
FIRST = Scenario("first", "GET first page", f"/tasks?limit={PAGE}")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def page_before(position: int) -> str:
    """The offset page just before `position` (0-based): its `next_cursor` starts a page there."""
    return f"/tasks?limit={PAGE}&offset={position - PAGE}"


def cursor_page(status: int, body: Any) -> str:
    """The path of the page a `page_before` answer's cursor points to, as a client would follow it."""
    if status != 200 or not body["next_cursor"]:
        raise RuntimeError(f"no cursor: {status} {body}")
    return f"/tasks?limit={PAGE}&cursor={urllib.parse.quote(body['next_cursor'])}"


def cursor_to(base_url: str, token: str, position: int) -> str:
    status, _, body = request(base_url + page_before(position), headers=auth(token))
    return cursor_page(status, body)


def deep_position(tasks: int) -> int:
    return tasks * 9 // 10


def standard(tasks: int, deep_cursor: str) -> list[Scenario]:
    """The six scenarios every backend runs at the standard size; `deep_cursor` is a page path."""
    deep = deep_position(tasks)
    return [
        Scenario("get", "GET one task", f"/tasks/{tasks // 2}"),
        FILTERED,
        Scenario("offset", f"GET page at offset={deep}", f"/tasks?limit={PAGE}&offset={deep}"),
        Scenario("cursor", f"GET page at position {deep} by cursor", deep_cursor),
        Scenario("post", "POST a task", "/tasks", "POST", json.dumps(NEW_TASK), 201),
        Scenario("patch", "PATCH with If-Match", "/tasks", "PATCH", json.dumps(PATCH_BODY), patch_first=1001),
    ]


def sqlite_scale(last_cursor: str) -> list[Scenario]:
    """First against last page by cursor over a big table: a keyset page costs the same anywhere."""
    return [FIRST, Scenario("last", "GET last page by cursor", last_cursor)]


def check(base_url: str, token: str, scenario: Scenario) -> None:
    """One request before the load, so a broken scenario fails loudly instead of measuring errors."""
    path, headers = scenario.path, auth(token)
    if scenario.patch_first is not None:
        path, headers = "/tasks/1", {**headers, "If-Match": '"1-1"'}  # task 1 is outside every PATCH block
    if scenario.body is not None:
        headers["Content-Type"] = "application/json"
    body = scenario.body.encode() if scenario.body is not None else None
    status, _, answer = request(base_url + path, scenario.method, body, headers)
    if status != scenario.expected:
        raise RuntimeError(f"{scenario.label}: expected {scenario.expected}, got {status}: {answer}")
