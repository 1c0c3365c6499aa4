"""`make bench [BASE=<commit>]`: the working tree's performance, guarded against an earlier commit's.

With `--base`, that commit is checked out in a temporary worktree and measured beside the
working tree in the same run: for each scenario its server and then the current one, on the
same data. One uvicorn worker runs on core 0 and wrk on core 1. The Markdown report goes to
bench/results.md (a full run) and to the terminal, then the guard's lines (bench/guard.py)
decide the exit status. `--profile` adds a py-spy recording of each scenario (bench/profile.py).
"""

import argparse
import json
import os
import shutil
import socket
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from bench import guard, report, scenarios
from bench.measure import Bench, Conditions, Plan, Session, Timing
from bench.report import Run
from bench.scenarios import Scenario
from bench.servers import LOG_DIR, ROOT
from bench.trees import base_tree, current_tree
from bench.wrk import ensure_wrk

BACKENDS = ("memory", "sqlite", "postgresql")
STANDARD = scenarios.STANDARD_NAMES
GROUPS = (*STANDARD, "first-page", "scale")
SQL_BACKENDS = ("sqlite", "postgresql")
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FULL = Timing(warmup_s=2, timed_s=10, c128_s=5)
QUICK = Timing(warmup_s=1, timed_s=3, c128_s=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="the commit to guard against (any git revision); without it, no ratios")
    parser.add_argument("--quick", action="store_true", help="short runs (1 s warm-up, 3 s timed, 2 s at c=128)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: " + ",".join(BACKENDS))
    parser.add_argument("--scenarios", default=",".join(GROUPS), help="comma-separated: " + ",".join(GROUPS))
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks for the standard scenarios")
    parser.add_argument("--first-page-tasks", type=int, default=100_000, help="tasks for first-page (SQL backends)")
    parser.add_argument("--big-sqlite", type=int, default=1_000_000, help="tasks for the SQLite scale scenarios")
    parser.add_argument("--big-memory", type=int, default=100_000, help="tasks for the memory scale scenario")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--profile", action="store_true", help="also record each scenario with py-spy")
    parser.add_argument(
        "--output", type=Path, help="default: bench/results.md for a full run, bench/results/partial.md otherwise"
    )
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


def chosen(options: argparse.Namespace) -> tuple[list[str], set[str]]:
    """The backends and scenario groups asked for, checked; PostgreSQL is skipped when unreachable."""
    backends, wanted = [b for b in options.backends.split(",") if b], set(options.scenarios.split(","))
    unknown = (set(backends) - set(BACKENDS)) | (wanted - set(GROUPS))
    if unknown:
        sys.exit(f"bench: unknown {', '.join(sorted(unknown))}; see bench/run.py --help")
    if "postgresql" in backends and not postgres_reachable(options.postgres_url):
        print("bench: PostgreSQL is not reachable; skipping the postgresql backend", file=sys.stderr)
        backends.remove("postgresql")
    return backends, wanted


def standard_plan(tasks: int, wanted: set[str]) -> Plan:
    def plan(session: Session) -> list[Scenario]:
        base_url, token = session.server.base_url, session.token
        deep_cursor = scenarios.cursor_to(base_url, token, scenarios.deep_position(tasks))
        return [s for s in scenarios.standard(tasks, deep_cursor) if s.name in wanted]

    return plan


def last_page_plan(tasks: int) -> Plan:
    def plan(session: Session) -> list[Scenario]:
        last_cursor = scenarios.cursor_to(session.server.base_url, session.token, tasks - scenarios.PAGE)
        return scenarios.sqlite_scale(last_cursor)

    return plan


def run_plan(bench: Bench, options: argparse.Namespace, backends: list[str], wanted: set[str]) -> None:
    """The standard scenarios per backend, then the first page at 100k, then the scale scenarios."""
    for backend in backends:
        if wanted & set(STANDARD):
            bench.compare(backend, options.tasks, standard_plan(options.tasks, wanted))
    for backend in (b for b in SQL_BACKENDS if b in backends and "first-page" in wanted):
        bench.compare(backend, options.first_page_tasks, lambda _: [scenarios.FIRST])
    if "scale" in wanted and "sqlite" in backends:
        bench.compare("sqlite", options.big_sqlite, last_page_plan(options.big_sqlite))
    if "scale" in wanted and "memory" in backends:
        bench.compare("memory", options.big_memory, lambda _: [scenarios.FILTERED])


def default_output(options: argparse.Namespace, backends: list[str], wanted: set[str]) -> Path:
    """Only a full run (every scenario, at least memory and SQLite) replaces bench/results.md."""
    full = not options.quick and wanted >= set(GROUPS) and {"memory", "sqlite"} <= set(backends)
    return ROOT / "bench" / "results.md" if full else LOG_DIR / "partial.md"


def measure(options: argparse.Namespace, backends: list[str], wanted: set[str]) -> Run:
    """Every chosen scenario on the base tree (if any) and the working tree."""
    timing = QUICK if options.quick else FULL
    conditions = Conditions(timing, can_pin(), options.settle, options.profile, options.postgres_url)
    with ExitStack() as stack:
        trees = [stack.enter_context(base_tree(options.base))] if options.base else []
        trees.append(current_tree())
        bench = Bench(trees, conditions)
        run_plan(bench, options, backends, wanted)
    descriptions = {tree.name: tree.description for tree in trees}
    return Run(bench.measurements, bench.readings, descriptions, options.tasks, timing.describe())


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    options = parse_args(argv)
    ensure_wrk()
    backends, wanted = chosen(options)
    run = measure(options, backends, wanted)
    checks = guard.checks(run, options.big_sqlite, options.big_memory)
    pg_version = postgres_version(options.postgres_url) if "postgresql" in backends else None
    text_out = report.markdown(run, report.machine(pg_version), [check.line() for check in checks])
    print("\n" + text_out)
    report.write(text_out, options.output or default_output(options, backends, wanted))
    (LOG_DIR / "results.json").write_text(json.dumps([asdict(m) for m in run.measurements], indent=1))
    failed = [check for check in checks if not check.passed]
    scope = "" if options.base else " (no --base: only the lines that need none)"
    minutes = (time.monotonic() - started) / 60
    print(f"bench: {len(checks) - len(failed)} of {len(checks)} guard lines pass{scope}; took {minutes:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
