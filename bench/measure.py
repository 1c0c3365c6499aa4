"""Measuring: each tree's server on its own copy of the same data, one scenario at a time.

For a backend and size, every tree gets its data and its server first; then each scenario
runs on the base server and right after on the current one, so both see the same machine.
A run is a warm-up, a timed run at 32 connections and a run at 128 that mostly counts errors.
"""

import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import scenarios
from bench.dataset import EMAIL, FILTER_QUERY, PASSWORD, create_postgres_database, drop_postgres_database
from bench.profile import start_recording, summary
from bench.report import BASE, TIMES, Measurement, MemoryReading
from bench.scenarios import Scenario
from bench.servers import (
    LOG_DIR,
    Server,
    cpu_sample,
    cpu_use,
    login,
    request,
    rss_mb,
    start_server,
    stop_server,
    wait_for_quiet_core,
    wait_until_idle,
)
from bench.trees import Tree, seed
from bench.wrk import Load, WrkResult, run_wrk

SERVER_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(48),
    "APP_ENV": "development",
    "DEMO_DATA": "false",
    "ADMIN_EMAIL": "",
    "ADMIN_PASSWORD": "",
    "ACCESS_TOKEN_EXPIRE_MINUTES": "240",
    "RATE_LIMIT_STORAGE": "memory://",
}


@dataclass(frozen=True)
class Timing:
    warmup_s: int
    timed_s: int
    c128_s: int

    def describe(self) -> str:
        return (
            f"one uvicorn worker, 1 wrk thread; {self.warmup_s} s warm-up, {self.timed_s} s timed at c=32, "
            f"{self.c128_s} s at c=128 (wrk timeout 2 s)"
        )


@dataclass(frozen=True)
class Session:
    """One tree's server with its data loaded, and a token for the user who owns every task."""

    tree: Tree
    backend: str
    tasks: int
    server: Server
    token: str
    seeded_mb: float  # the worker's RSS once its data is in, before any load


@dataclass(frozen=True)
class Conditions:
    """How every scenario is run, the same for every tree."""

    timing: Timing
    pin: bool  # server on core 0, wrk on core 1
    settle_s: float  # the longest wait for other load to leave core 0 before a timed run
    profile: bool  # one more run under py-spy per scenario
    postgres_url: str  # where the per-tree databases are created


Plan = Callable[[Session], list[Scenario]]  # a session's scenarios (cursors are read from its server)


class Bench:
    """Runs scenarios on every tree's server and keeps what they measured."""

    def __init__(self, trees: list[Tree], conditions: Conditions) -> None:
        self.trees, self.conditions = trees, conditions
        self.measurements: list[Measurement] = []
        self.readings: list[MemoryReading] = []

    def compare(self, backend: str, tasks: int, plan: Plan) -> None:
        """Every tree's server for `backend` with `tasks` tasks, then each scenario on each in turn."""
        with ExitStack() as stack:
            sessions = [stack.enter_context(self.session(tree, backend, tasks)) for tree in self.trees]
            same_data(sessions)
            for runs in zip(*(plan(session) for session in sessions), strict=True):
                for session, scenario in zip(sessions, runs, strict=True):
                    self.measure(session, scenario)
            self.readings += [memory_reading(session) for session in sessions]

    # --- data and servers ---------------------------------------------------------------

    @contextmanager
    def database(self, tree: Tree, backend: str, tasks: int) -> Iterator[dict[str, str]]:
        """The server environment for `tasks` tasks; SQL databases are seeded here, one per tree."""
        if backend == "memory":
            yield {"DATABASE_URL": "memory", "BENCH_SEED_TASKS": str(tasks)}
        elif backend == "sqlite":
            directory = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
            try:
                url = f"sqlite:///{directory / 'tasks.db'}"
                seed(tree, url, tasks)
                yield {"DATABASE_URL": url}
            finally:
                shutil.rmtree(directory)
        else:
            name = f"tasks_bench_{tree.name}_{uuid.uuid4().hex[:10]}"
            url = create_postgres_database(self.conditions.postgres_url, name)
            try:
                seed(tree, url, tasks)
                yield {"DATABASE_URL": url}
            finally:
                drop_postgres_database(self.conditions.postgres_url, name)

    @contextmanager
    def session(self, tree: Tree, backend: str, tasks: int) -> Iterator[Session]:
        with self.database(tree, backend, tasks) as env:
            started = time.monotonic()
            name = f"{tree.name}-{backend}-{tasks}"
            server = start_server("bench.server:app", name, {**SERVER_ENV, **env}, tree.root, self.conditions.pin)
            print(
                f"bench: {tree.name}: {backend} server with {tasks:,} tasks ready in {time.monotonic() - started:.0f} s"
            )
            try:
                token = login(server.base_url, EMAIL, PASSWORD)
                yield Session(tree, backend, tasks, server, token, rss_mb(server.pid))
            finally:
                stop_server(server)

    # --- measuring ----------------------------------------------------------------------

    def measure(self, session: Session, scenario: Scenario) -> None:
        """Warm-up, then the timed run at c=32 and the run at c=128; each wrk run gets its own PATCH block."""
        server, token = session.server, session.token
        timing, pin, settle_s = self.conditions.timing, self.conditions.pin, self.conditions.settle_s
        scenarios.check(server.base_url, token, scenario)

        def load(run: int, connections: int, seconds: int) -> WrkResult:
            env = scenario.wrk_env(token, run)
            result = run_wrk(Load(server.base_url + scenario.path, connections, seconds, env), pin)
            wait_until_idle(server.pid)
            return result

        load(0, 32, timing.warmup_s)
        wait_for_quiet_core(server.pid, settle_s)
        before = cpu_sample(server.pid)
        c32 = load(1, 32, timing.timed_s)
        cpu = cpu_use(before, cpu_sample(server.pid))
        wait_for_quiet_core(server.pid, settle_s)
        c128 = load(2, 128, timing.c128_s)
        if self.conditions.profile:
            self.record_profile(session, scenario, lambda: load(3, 32, timing.timed_s))
        measurement = Measurement(
            session.tree.name, session.backend, session.tasks, scenario.name, scenario.label, c32, c128, cpu
        )
        self.measurements.append(measurement)
        self.print_progress(measurement)

    def record_profile(self, session: Session, scenario: Scenario, run_load: Callable[[], WrkResult]) -> None:
        """One more c=32 run with py-spy attached (kept out of the figures: sampling costs a little)."""
        output = LOG_DIR / f"profile-{session.tree.name}-{session.backend}-{session.tasks}-{scenario.name}.txt"
        recorder = start_recording(session.server.pid, self.conditions.timing.timed_s, output)
        run_load()
        recorder.wait()
        print(summary(output, top=12))

    def print_progress(self, m: Measurement) -> None:
        base = next((x for x in self.measurements if x.tree == BASE and x.key == m.key), None)
        ratio = f"{m.c32.rps / base.c32.rps:5.2f}{TIMES} base" if base and base.c32.rps and m.tree != BASE else " " * 11
        print(
            f"{m.tree:<7} {m.backend:<10} {m.tasks:>9,} {m.scenario:<8} {m.c32.rps:>7,.0f} req/s {ratio} "
            f"p50 {m.c32.p50_ms:6.1f} p99 {m.c32.p99_ms:6.1f} ms err {m.c32.errors:<4} "
            f"cpu {m.cpu_us:6,.0f} µs/req others {100 * m.cpu.others_share:3.0f}% | "
            f"c=128 {m.c128.rps:>7,.0f} req/s p99 {m.c128.p99_ms:6.1f} ms err {m.c128.errors}",
            flush=True,
        )


def memory_reading(session: Session) -> MemoryReading:
    loaded = rss_mb(session.server.pid)
    return MemoryReading(session.tree.name, session.backend, session.tasks, session.seeded_mb, loaded)


def same_data(sessions: list[Session]) -> None:
    """Refuse to compare trees whose servers hold different data: same totals, all and filtered."""
    counts = {session.tree.name: data_counts(session) for session in sessions}
    if len(set(counts.values())) > 1:
        raise RuntimeError(f"the trees hold different data (tasks, filtered): {counts}")


def data_counts(session: Session) -> tuple[int, int]:
    totals = []
    for query in ("limit=1", f"{FILTER_QUERY}&limit=1"):
        status, _, body = request(f"{session.server.base_url}/tasks?{query}", headers=scenarios.auth(session.token))
        if status != 200:
            raise RuntimeError(f"{session.tree.name}: GET /tasks?{query} answered {status}: {body}")
        totals.append(int(body["total"]))
    return totals[0], totals[1]
