"""CPU cost per request without the network: the ASGI app called directly, one request at a time.

    .venv/bin/python -m bench.asgi_cost [--backends memory,sqlite] [--scenarios get,post] [--profile]

wrk's figures move with whatever else the machine is doing; CPU time per request measured
in-process does not, so this is the quick way to check an optimisation (before `make bench`)
and, with `--profile`, to see where the time goes (cProfile, sorted by own time).
uvicorn's HTTP parsing is left out, so ratios to the baseline come out lower than under wrk.
"""

import argparse
import asyncio
import cProfile
import io
import json
import logging
import pstats
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from auth import create_access_token
from bench import scenarios
from bench.baseline import app as baseline_app
from bench.dataset import EMAIL, seed_sql
from bench.scenarios import Scenario
from bench.server import seed_memory
from main import create_app
from settings import Settings

SECRET = "asgi-cost-secret-key-long-enough-for-hs256-signing"  # noqa: S105 - a throwaway key
WARMUP = 200


@dataclass
class Client:
    """Calls an ASGI app in-process; remembers ETags so PATCH scenarios chain If-Match."""

    app: ASGIApp
    token: str = ""
    etags: dict[int, str] = field(default_factory=dict)

    async def call(self, method: str, target: str, body: str | None = None) -> tuple[int, dict[str, str], bytes]:
        path, _, query = target.partition("?")
        headers = [(b"host", b"127.0.0.1")]
        if self.token:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))
        if body is not None:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        patch_id = int(path.rsplit("/", 1)[1]) if method == "PATCH" else 0
        if patch_id:
            headers.append((b"if-match", self.etags.get(patch_id, f'"{patch_id}-1"').encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        status, answer_headers, chunks = await self._exchange(scope, (body or "").encode())
        if patch_id and "etag" in answer_headers:
            self.etags[patch_id] = answer_headers["etag"]
        return status, answer_headers, b"".join(chunks)

    async def _exchange(self, scope: dict[str, Any], body: bytes) -> tuple[int, dict[str, str], list[bytes]]:
        messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = sent[0]
        headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
        return start["status"], headers, [m.get("body", b"") for m in sent[1:]]


@asynccontextmanager
async def project_app(backend: str, tasks: int) -> AsyncIterator[Client]:
    """The project's app with its lifespan running and `tasks` tasks owned by user 1."""
    directory = Path(tempfile.mkdtemp(prefix="tasks-asgi-cost-"))
    url = "memory" if backend == "memory" else f"sqlite:///{directory / 'tasks.db'}"
    if backend == "sqlite":
        seed_sql(url, tasks)
    settings = Settings(database_url=url, secret_key=SECRET, demo_data=False)
    app = create_app(settings)
    logging.getLogger("tasks.access").setLevel(logging.WARNING)
    try:
        async with app.router.lifespan_context(app):
            if backend == "memory":
                await seed_memory(app.state.storage, tasks)
            credentials = await app.state.storage.get_credentials(EMAIL)
            yield Client(app, create_access_token(credentials, settings).access_token)
    finally:
        shutil.rmtree(directory)


async def resolve_cursor(client: Client, position: int) -> str:
    status, _, body = await client.call("GET", scenarios.page_before(position))
    return scenarios.cursor_page(status, json.loads(body))


def patch_targets(scenario: Scenario) -> Callable[[int], str]:
    """PATCH scenarios rotate over their block of tasks; the others send the same path every time."""
    if scenario.patch_first is None:
        return lambda _: scenario.path
    first = scenario.patch_first
    return lambda i: f"/tasks/{first + i % scenarios.PATCH_BLOCK}"


async def cost(client: Client, scenario: Scenario, count: int, profile: bool) -> float:
    """CPU microseconds per request (all threads), after a warm-up."""
    target = patch_targets(scenario)
    for i in range(WARMUP):
        status, _, body = await client.call(scenario.method, target(i), scenario.body)
        if status != scenario.expected:
            raise RuntimeError(f"{scenario.label}: {status} {body[:300]!r}")
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for i in range(WARMUP, WARMUP + count):
        await client.call(scenario.method, target(i), scenario.body)
    if profiler:
        profiler.disable()
        print(top_functions(profiler))
    return 1e6 * (time.process_time() - started) / count


def top_functions(profiler: cProfile.Profile, limit: int = 30) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000]


async def measure(options: argparse.Namespace) -> None:
    baseline = await cost(Client(baseline_app), Scenario("get", "baseline GET", "/items/5000"), options.requests, False)
    print(f"{'baseline':<8} {'get':<9} {baseline:8.0f} µs/req")
    wanted = set(options.scenarios.split(","))
    for backend in options.backends.split(","):
        async with project_app(backend, options.tasks) as client:
            cursor = await resolve_cursor(client, scenarios.deep_position(options.tasks))
            for scenario in scenarios.standard(options.tasks, cursor):
                if scenario.name in wanted:
                    count = options.requests if scenario.name in ("get", "post", "patch") else options.requests // 10
                    us = await cost(client, scenario, count, options.profile)
                    print(
                        f"{backend:<8} {scenario.name:<9} {us:8.0f} µs/req  {baseline / us:5.2f}x baseline", flush=True
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--scenarios", default=",".join(scenarios.STANDARD_NAMES))
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    asyncio.run(measure(options))


if __name__ == "__main__":
    main()
