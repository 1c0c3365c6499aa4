"""`make bench`: the Tasks API against a ten-line FastAPI baseline, under wrk, on pinned cores.

One uvicorn worker runs on core 0 and wrk on core 1. Each scenario gets a warm-up, a timed
run at 32 connections and a run at 128 that mostly counts errors. The baseline runs first
and last; every project figure is also shown as a ratio to its GET req/s. The scenarios with
ratio targets also run against `bench/floor.py` (FastAPI and the same storage, nothing
else). The Markdown table goes to bench/results.md (the README embeds it), then the targets
of issue 5 are checked. `--profile` adds a py-spy recording of each scenario (see bench/profile.py).
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from bench import report, scenarios
from bench.dataset import EMAIL, PASSWORD, create_postgres_database, drop_postgres_database, seed_sql
from bench.profile import start_recording, summary
from bench.report import BASELINE, TIMES, Measurement, MemoryReading, Run
from bench.scenarios import Scenario
from bench.servers import (
    LOG_DIR,
    ROOT,
    Server,
    cpu_sample,
    cpu_use,
    login,
    rss_mb,
    start_server,
    stop_server,
    wait_for_quiet_core,
    wait_until_idle,
)
from bench.wrk import Load, WrkResult, ensure_wrk, run_wrk

BACKENDS = ("memory", "sqlite", "postgresql")
STANDARD = scenarios.STANDARD_NAMES
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
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


FULL = Timing(warmup_s=2, timed_s=10, c128_s=5)
QUICK = Timing(warmup_s=1, timed_s=3, c128_s=2)


@dataclass(frozen=True)
class Session:
    """A project server with its data loaded, and a token for the user who owns every task."""

    backend: str
    tasks: int
    server: Server
    token: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (1 s warm-up, 3 s timed)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: memory,sqlite,postgresql")
    parser.add_argument(
        "--scenarios", default=",".join((*STANDARD, "scale")), help="comma-separated: " + ",".join(STANDARD) + ",scale"
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks for the standard scenarios")
    parser.add_argument("--big-sqlite", type=int, default=1_000_000, help="tasks for the SQLite scale scenarios")
    parser.add_argument("--big-memory", type=int, default=100_000, help="tasks for the memory scale scenario")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--profile", action="store_true", help="also record each scenario with py-spy")
    parser.add_argument(
        "--output", type=Path, help="default: bench/results.md for a full run, bench/results/partial.md otherwise"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--settle",
        type=float,
        default=10,
        help="seconds to wait, at most, for other load to leave core 0 before a timed run",
    )
    return parser.parse_args(argv)


def can_pin() -> bool:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return True
    print("bench: WARNING: no taskset or fewer than 2 cores; running unpinned", file=sys.stderr)
    return False


def postgres_reachable(url: str) -> bool:
    parts = urlsplit(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def postgres_version(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
    engine.dispose()
    return version.split()[0]


class Bench:
    """Runs scenarios against servers and keeps what they measured."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.timing = QUICK if options.quick else FULL
        self.pin = can_pin()
        self.measurements: list[Measurement] = []
        self.readings: list[MemoryReading] = []

    # --- servers ------------------------------------------------------------------

    @contextmanager
    def database(self, backend: str, tasks: int) -> Iterator[dict[str, str]]:
        """The server environment for a backend holding `tasks` tasks; SQL databases are seeded here."""
        if backend == "memory":
            yield {"DATABASE_URL": "memory", "BENCH_SEED_TASKS": str(tasks)}
        elif backend == "sqlite":
            directory = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
            try:
                url = f"sqlite:///{directory / 'tasks.db'}"
                self.seed(url, tasks)
                yield {"DATABASE_URL": url}
            finally:
                shutil.rmtree(directory)
        else:
            name = f"tasks_bench_{uuid.uuid4().hex[:10]}"
            url = create_postgres_database(self.options.postgres_url, name)
            try:
                self.seed(url, tasks)
                yield {"DATABASE_URL": url}
            finally:
                drop_postgres_database(self.options.postgres_url, name)

    def seed(self, url: str, tasks: int) -> None:
        started = time.monotonic()
        seed_sql(url, tasks)
        print(f"bench: seeded {tasks:,} tasks into {url.split(':')[0]} in {time.monotonic() - started:.0f} s")

    @contextmanager
    def project(self, backend: str, tasks: int) -> Iterator[Session]:
        with self.database(backend, tasks) as env:
            started = time.monotonic()
            server = start_server("bench.server:app", f"{backend}-{tasks}", {**SERVER_ENV, **env}, self.pin)
            print(f"bench: {backend} server with {tasks:,} tasks ready in {time.monotonic() - started:.0f} s")
            try:
                session = Session(backend, tasks, server, login(server.base_url, EMAIL, PASSWORD))
                seeded = rss_mb(server.pid)
                yield session
                self.readings.append(MemoryReading(backend, tasks, seeded, rss_mb(server.pid)))
            finally:
                stop_server(server)

    # --- measuring ----------------------------------------------------------------------

    def measure(self, backend: str, tasks: int, server: Server, token: str, scenario: Scenario) -> Measurement:
        """Warm-up, then the timed run at c=32 and the run at c=128; each wrk run gets its own PATCH block."""
        scenarios.check(server.base_url, token, scenario)

        def load(run: int, connections: int, seconds: int) -> WrkResult:
            env = scenario.wrk_env(token, run)
            result = run_wrk(Load(server.base_url + scenario.path, connections, seconds, env), self.pin)
            wait_until_idle(server.pid)
            return result

        load(0, 32, self.timing.warmup_s)
        wait_for_quiet_core(server.pid, self.options.settle)
        before = cpu_sample(server.pid)
        c32 = load(1, 32, self.timing.timed_s)
        cpu = cpu_use(before, cpu_sample(server.pid))
        wait_for_quiet_core(server.pid, self.options.settle)
        c128 = load(2, 128, self.timing.c128_s)
        if self.options.profile:
            self.profile(f"{backend}-{tasks}-{scenario.name}", server, lambda: load(3, 32, self.timing.timed_s))
        measurement = Measurement(backend, tasks, scenario.name, scenario.label, c32, c128, cpu)
        self.measurements.append(measurement)
        self.print_progress(measurement)
        return measurement

    def profile(self, name: str, server: Server, run_load: Callable[[], WrkResult]) -> None:
        """One more c=32 run with py-spy attached (kept out of the figures: sampling costs a little)."""
        output = LOG_DIR / f"profile-{name}.txt"
        recorder = start_recording(server.pid, self.timing.timed_s, output)
        run_load()
        recorder.wait()
        print(summary(output, top=12))

    def print_progress(self, m: Measurement) -> None:
        baseline = [x.c32.rps for x in self.measurements if x.backend == BASELINE]
        ratio = f"{m.c32.rps / baseline[0]:5.2f}{TIMES}" if baseline else "     "
        print(
            f"{m.backend:<12} {m.tasks:>8,} {m.scenario:<9} {m.c32.rps:>8,.0f} req/s {ratio} "
            f"p50 {m.c32.p50_ms:6.1f} p99 {m.c32.p99_ms:6.1f} ms err {m.c32.errors:<4} "
            f"cpu {m.cpu_us:6,.0f} µs/req others {100 * m.cpu.others_share:3.0f}% | "
            f"c=128 {m.c128.rps:>8,.0f} req/s p99 {m.c128.p99_ms:6.1f} ms err {m.c128.errors}",
            flush=True,
        )

    def session(self, session: Session, scenario_list: list[Scenario]) -> None:
        for scenario in scenario_list:
            self.measure(session.backend, session.tasks, session.server, session.token, scenario)

    # --- the plan ------------------------------------------------------------------------

    def baseline(self) -> None:
        server = start_server("bench.baseline:app", "baseline", {}, self.pin)
        try:
            self.measure(BASELINE, 10_000, server, "", Scenario("get", "GET one item (baseline)", "/items/5000"))
        finally:
            stop_server(server)

    def standard(self, backend: str, wanted: set[str]) -> None:
        tasks = self.options.tasks
        with self.project(backend, tasks) as session:
            deep_cursor = scenarios.cursor_to(session.server.base_url, session.token, scenarios.deep_position(tasks))
            chosen = scenarios.standard(tasks, deep_cursor)
            self.session(session, [s for s in chosen if s.name in wanted])

    def floor(self, backend: str, wanted: set[str]) -> None:
        """The ratio-target scenarios against `bench/floor.py`: FastAPI and this backend, nothing else."""
        tasks = self.options.tasks
        with self.database(backend, tasks) as env:
            server = start_server("bench.floor:app", f"floor-{backend}", {**SERVER_ENV, **env}, self.pin)
            try:
                for scenario in scenarios.floor(tasks, report.RATIO_SCENARIOS & wanted):
                    self.measure(report.floor_of(backend), tasks, server, "", scenario)
            finally:
                stop_server(server)

    def sqlite_scale(self) -> None:
        tasks = self.options.big_sqlite
        with self.project("sqlite", tasks) as session:
            last_cursor = scenarios.cursor_to(session.server.base_url, session.token, tasks - scenarios.PAGE)
            self.session(session, scenarios.sqlite_scale(last_cursor))

    def memory_scale(self) -> None:
        with self.project("memory", self.options.big_memory) as session:
            self.session(session, scenarios.memory_scale())


def chosen_backends(options: argparse.Namespace) -> list[str]:
    backends = [name for name in options.backends.split(",") if name]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        sys.exit(f"bench: unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(BACKENDS)}")
    if "postgresql" in backends and not postgres_reachable(options.postgres_url):
        print("bench: PostgreSQL is not reachable; skipping the postgresql backend", file=sys.stderr)
        backends.remove("postgresql")
    return backends


def default_output(options: argparse.Namespace) -> Path:
    """Only a full, default run may replace the table the README embeds."""
    every_scenario = set(options.scenarios.split(",")) >= {*STANDARD, "scale"}
    full = not options.quick and every_scenario and {"memory", "sqlite"} <= set(options.backends.split(","))
    return ROOT / "bench" / "results.md" if full else LOG_DIR / "partial.md"


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    options = parse_args(argv)
    ensure_wrk()
    backends, wanted = chosen_backends(options), set(options.scenarios.split(","))
    bench = Bench(options)
    bench.baseline()
    for backend in backends:
        if wanted & set(STANDARD):
            bench.standard(backend, wanted)
        if backend in report.RATIO_BACKENDS and wanted & report.RATIO_SCENARIOS:
            bench.floor(backend, wanted)
    if "scale" in wanted and "sqlite" in backends:
        bench.sqlite_scale()
    if "scale" in wanted and "memory" in backends:
        bench.memory_scale()
    bench.baseline()
    run = Run(bench.measurements, bench.readings, options.tasks, bench.timing.describe())
    targets = report.targets(run, options.big_sqlite, options.big_memory)
    pg_version = postgres_version(options.postgres_url) if "postgresql" in backends else None
    text_out = report.markdown(run, report.machine(pg_version), targets)
    print("\n" + text_out)
    report.write(text_out, options.output or default_output(options))
    (LOG_DIR / "results.json").write_text(json.dumps([asdict(m) for m in run.measurements], indent=1))
    failed = [t for t in targets if not t.passed]
    minutes = (time.monotonic() - started) / 60
    print(
        f"bench: {len(targets) - len(failed)} of {len(targets)} targets pass; took {minutes:.1f} min", file=sys.stderr
    )
    return 1 if failed and options.strict else 0


if __name__ == "__main__":
    sys.exit(main())
