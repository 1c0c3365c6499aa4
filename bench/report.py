"""The results table (Markdown, embedded in the README), the machine it ran on, and the targets."""

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.servers import CpuUse
from bench.wrk import WrkResult

BASELINE = "baseline"
FLOOR = "floor"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Measurement:
    backend: str
    tasks: int
    scenario: str
    label: str
    c32: WrkResult
    c128: WrkResult
    cpu: CpuUse  # during the timed c=32 run

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request at c=32, in microseconds (infinite when nothing was answered)."""
        return self.cpu.per_request_us(self.c32.requests) if self.c32.requests else float("inf")


@dataclass(frozen=True)
class MemoryReading:
    backend: str
    tasks: int
    seeded_mb: float
    loaded_mb: float


@dataclass(frozen=True)
class Target:
    description: str
    passed: bool
    measured: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.description}: {self.measured}"


@dataclass(frozen=True)
class Run:
    """Everything one `make bench` measured."""

    measurements: list[Measurement]
    readings: list[MemoryReading]
    standard_tasks: int
    settings: str

    @property
    def baseline_rps(self) -> float:
        """The reference: the mean of the baseline's GET runs (one at the start, one at the end)."""
        runs = [m.c32.rps for m in self.measurements if m.backend == BASELINE]
        return sum(runs) / len(runs)

    @property
    def baseline_cpu_us(self) -> float:
        runs = [m.cpu_us for m in self.measurements if m.backend == BASELINE]
        return sum(runs) / len(runs)

    def cpu_ratio(self, m: Measurement) -> float:
        """Like the req/s ratio, but from CPU time per request: immune to other load on the machine."""
        return self.baseline_cpu_us / m.cpu_us

    def find(self, backend: str, scenario: str, tasks: int | None = None) -> Measurement | None:
        tasks = tasks or self.standard_tasks
        wanted = (backend, scenario, tasks)
        return next((m for m in self.measurements if (m.backend, m.scenario, m.tasks) == wanted), None)


# --- the machine ------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _wrk_version() -> str:
    answer = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    words = (answer.stdout + answer.stderr).split()
    return words[1] if len(words) > 1 else "?"


def machine(postgres_version: str | None) -> str:
    import sqlite3

    python = platform.python_version()
    parts = [
        f"{cpu_model()}, {os.cpu_count()} cores (server pinned to core 0, wrk to core 1)",
        f"Linux {platform.release()}",
        f"Python {python}",
        f"FastAPI {_version('fastapi')}",
        f"Starlette {_version('starlette')}",
        f"Pydantic {_version('pydantic')}",
        f"uvicorn {_version('uvicorn')} (asyncio loop, httptools {_version('httptools')})",
        f"SQLAlchemy {_version('sqlalchemy')}",
        f"SQLite {sqlite3.sqlite_version}",
        f"wrk {_wrk_version()}",
    ]
    if postgres_version:
        parts.append(f"PostgreSQL {postgres_version}")
    parts.append(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return " · ".join(parts)


# --- the table ----------------------------------------------------------------------


def _errors(result: WrkResult) -> str:
    if not result.errors:
        return "0"
    parts = [(result.non2xx, "non-2xx"), (result.socket_errors, "socket/late"), (result.unanswered, "unanswered")]
    return ", ".join(f"{count} {kind}" for count, kind in parts if count)


def _tasks(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 and count % 1_000_000 == 0 else f"{count // 1000}k"


def table(run: Run) -> str:
    header = (
        f"| Backend | Tasks | Scenario | req/s | {TIMES} baseline GET | p50 ms | p99 ms | errors "
        f"| CPU µs/req | {TIMES} baseline by CPU | core 0 taken by others "
        "| req/s c=128 | p99 ms c=128 | errors c=128 |"
    )
    lines = [header, "|" + "---|" * 14]
    for m in run.measurements:
        ratio = m.c32.rps / run.baseline_rps
        lines.append(
            f"| {m.backend} | {_tasks(m.tasks)} | {m.label} | {m.c32.rps:,.0f} | {ratio:.2f}{TIMES} "
            f"| {m.c32.p50_ms:.1f} | {m.c32.p99_ms:.1f} | {_errors(m.c32)} "
            f"| {m.cpu_us:,.0f} | {run.cpu_ratio(m):.2f}{TIMES} | {100 * m.cpu.others_share:.0f}% "
            f"| {m.c128.rps:,.0f} | {m.c128.p99_ms:.1f} | {_errors(m.c128)} |"
        )
    return "\n".join(lines)


def memory_table(readings: Iterable[MemoryReading]) -> str:
    lines = ["| Backend | Tasks | worker RSS after seeding | after the load |", "|---|---|---|---|"]
    lines += [f"| {r.backend} | {_tasks(r.tasks)} | {r.seeded_mb:.0f} MB | {r.loaded_mb:.0f} MB |" for r in readings]
    return "\n".join(lines)


def markdown(run: Run, machine_line: str, targets: list[Target]) -> str:
    sections = [
        "# Benchmark results",
        f"Machine: {machine_line}",
        f"Settings: {run.settings}. Baseline: `bench/baseline.py` GET, {run.baseline_rps:,.0f} req/s "
        "(mean of a run before and after the project's).",
        table(run),
        memory_table(run.readings),
        "Targets:\n\n" + "\n".join(f"- {t.line()}" for t in targets),
    ]
    return "\n\n".join(sections) + "\n"


# --- the targets ------------------------------------------------------------------------

RATIO_TARGETS = (
    ("memory", "get", 0.5),
    ("memory", "filtered", 0.3),
    ("memory", "post", 0.4),
    ("sqlite", "get", 0.3),
    ("sqlite", "filtered", 0.2),
    ("sqlite", "post", 0.2),
)
RATIO_BACKENDS = {backend for backend, _, _ in RATIO_TARGETS}
RATIO_SCENARIOS = {scenario for _, scenario, _ in RATIO_TARGETS}


def floor_of(backend: str) -> str:
    """The name `bench/floor.py`'s rows carry for a backend: FastAPI and that storage alone."""
    return f"{backend} {FLOOR}"


P99_LIMITS_MS = {"memory": 50.0, "sqlite": 100.0}
SCALE_FIRST_LAST = 1.5
SCALE_FILTERED = 2.0
MEMORY_LIMIT_MB = 250.0
MEMORY_FILTERED_RATIO = 0.1


def targets(run: Run, big_sqlite: int, big_memory: int) -> list[Target]:
    checks: list[Callable[[], list[Target]]] = [
        lambda: ratio_targets(run),
        lambda: error_targets(run),
        lambda: p99_targets(run),
        lambda: sqlite_scale_targets(run, big_sqlite),
        lambda: memory_scale_targets(run, big_memory),
    ]
    return [target for check in checks for target in check()]


def ratio_targets(run: Run) -> list[Target]:
    found = []
    for backend, scenario, minimum in RATIO_TARGETS:
        m = run.find(backend, scenario)
        if m is not None:
            ratio = m.c32.rps / run.baseline_rps
            measured = f"{ratio:.2f}{TIMES} (by CPU time per request: {run.cpu_ratio(m):.2f}{TIMES})"
            floor = run.find(floor_of(backend), scenario)
            if floor is not None:
                measured += f"; FastAPI and the {backend} store alone: {floor.c32.rps / run.baseline_rps:.2f}{TIMES}"
            found.append(Target(f"{backend} {m.label} ≥ {minimum}{TIMES} baseline GET", ratio >= minimum, measured))
    return found


def error_targets(run: Run) -> list[Target]:
    project = [m for m in run.measurements if m.backend != BASELINE and not m.backend.endswith(FLOOR)]
    if not project:
        return []
    failing = [f"{m.backend} {_tasks(m.tasks)} {m.scenario}" for m in project if m.c32.errors or m.c128.errors]
    return [Target("zero errors at c=32 and c=128, every scenario", not failing, ", ".join(failing) or "none")]


def p99_targets(run: Run) -> list[Target]:
    found = []
    for backend, limit in P99_LIMITS_MS.items():
        ours = [m for m in run.measurements if m.backend == backend and m.tasks == run.standard_tasks]
        if ours:
            slow = [f"{m.scenario} {m.c32.p99_ms:.0f} ms" for m in ours if m.c32.p99_ms > limit]
            worst = max(m.c32.p99_ms for m in ours)
            measured = ", ".join(slow) if slow else f"worst {worst:.1f} ms"
            found.append(Target(f"{backend} p99 ≤ {limit:.0f} ms at c=32, every scenario", not slow, measured))
    return found


def sqlite_scale_targets(run: Run, big: int) -> list[Target]:
    found = []
    first, last = run.find("sqlite", "first", big), run.find("sqlite", "last", big)
    if first and last:
        cost = first.c32.rps / last.c32.rps if last.c32.requests else float("inf")
        caveat = _timeout_caveat(last, first)
        found.append(
            Target(
                f"sqlite {_tasks(big)}: last page by cursor ≤ {SCALE_FIRST_LAST}{TIMES} the first page's cost",
                cost <= SCALE_FIRST_LAST,
                f"{cost:.2f}{TIMES} ({last.c32.rps:,.0f} vs {first.c32.rps:,.0f} req/s){caveat}",
            )
        )
    small, large = run.find("sqlite", "filtered"), run.find("sqlite", "filtered", big)
    if small and large:
        cost = small.c32.rps / large.c32.rps if large.c32.requests else float("inf")
        caveat = _timeout_caveat(large, small)
        found.append(
            Target(
                f"sqlite {_tasks(big)}: filtered first page ≤ {SCALE_FILTERED}{TIMES} the {_tasks(small.tasks)} cost",
                cost <= SCALE_FILTERED,
                f"{cost:.2f}{TIMES} ({large.c32.rps:,.0f} vs {small.c32.rps:,.0f} req/s){caveat}",
            )
        )
    return found


def _timeout_caveat(*compared: Measurement) -> str:
    """A ratio of two runs that both hit the timeout compares two ceilings, not two costs: say so."""
    if not any(m.c32.errors for m in compared):
        return ""
    costs = " vs ".join(f"{m.cpu_us:,.0f}" for m in compared)
    return f"; CAUTION: errors at c=32, so req/s is capped by the timeout (CPU µs/req: {costs})"


def memory_scale_targets(run: Run, big: int) -> list[Target]:
    found = []
    reading = next((r for r in run.readings if (r.backend, r.tasks) == ("memory", big)), None)
    if reading:
        rss = max(reading.seeded_mb, reading.loaded_mb)
        found.append(
            Target(
                f"memory {_tasks(big)}: worker RSS ≤ {MEMORY_LIMIT_MB:.0f} MB", rss <= MEMORY_LIMIT_MB, f"{rss:.0f} MB"
            )
        )
    filtered = run.find("memory", "filtered", big)
    if filtered:
        ratio = filtered.c32.rps / run.baseline_rps
        found.append(
            Target(
                f"memory {_tasks(big)}: filtered page ≥ {MEMORY_FILTERED_RATIO}{TIMES} baseline GET",
                ratio >= MEMORY_FILTERED_RATIO,
                f"{ratio:.2f}{TIMES}",
            )
        )
    return found


def write(text: str, path: Path) -> None:
    path.write_text(text)
    print(f"bench: wrote {path}", file=sys.stderr)
