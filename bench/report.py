"""What a run measured, per tree, and the Markdown report of it: machine, settings, tables, guard."""

import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.servers import CpuUse
from bench.wrk import WrkResult

TIMES = "\N{MULTIPLICATION SIGN}"
NONE = "\N{EN DASH}"  # a cell with nothing to show
BASE, CURRENT = "base", "current"
BUSY_CORE = 0.2  # past this share of core 0 taken by others, a req/s ratio says more about them


@dataclass(frozen=True)
class Measurement:
    tree: str
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

    @property
    def key(self) -> tuple[str, int, str]:
        """What makes two trees' measurements the same scenario."""
        return self.backend, self.tasks, self.scenario


@dataclass(frozen=True)
class MemoryReading:
    tree: str
    backend: str
    tasks: int
    seeded_mb: float
    loaded_mb: float


@dataclass(frozen=True)
class Comparison:
    """The current tree's measurement of a scenario beside the base tree's."""

    current: Measurement
    base: Measurement

    @property
    def ratio(self) -> float:
        """By req/s at c=32: what the guard judges."""
        return self.current.c32.rps / self.base.c32.rps if self.base.c32.rps else float("inf")

    @property
    def cpu_ratio(self) -> float:
        """The same from server CPU time per request, which other load on the machine moves less."""
        return self.base.cpu_us / self.current.cpu_us

    def figures(self) -> str:
        figures = (
            f"{self.ratio:.2f}{TIMES} ({self.current.c32.rps:,.0f} vs {self.base.c32.rps:,.0f} req/s; "
            f"by CPU per request {self.cpu_ratio:.2f}{TIMES})"
        )
        others = max(self.current.cpu.others_share, self.base.cpu.others_share)
        if others > BUSY_CORE:
            figures += f"; CAUTION: other processes took {others:.0%} of core 0 during a timed run"
        return figures


@dataclass(frozen=True)
class Run:
    """Everything one `make bench` measured; `trees` describes each tree by name."""

    measurements: list[Measurement]
    readings: list[MemoryReading]
    trees: dict[str, str]
    standard_tasks: int
    settings: str

    def find(self, tree: str, backend: str, scenario: str, tasks: int) -> Measurement | None:
        wanted = (tree, backend, tasks, scenario)
        return next((m for m in self.measurements if (m.tree, *m.key) == wanted), None)

    def comparison(self, current: Measurement) -> Comparison | None:
        base = next((m for m in self.measurements if m.tree == BASE and m.key == current.key), None)
        return Comparison(current, base) if base else None

    def current(self) -> list[Measurement]:
        return [m for m in self.measurements if m.tree == CURRENT]


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


# --- the tables ---------------------------------------------------------------------


def _errors(result: WrkResult) -> str:
    if not result.errors:
        return "0"
    parts = [(result.non2xx, "non-2xx"), (result.socket_errors, "socket/late"), (result.unanswered, "unanswered")]
    return ", ".join(f"{count} {kind}" for count, kind in parts if count)


def tasks_label(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 and count % 1_000_000 == 0 else f"{count // 1000}k"


def _ratios(run: Run, m: Measurement) -> tuple[str, str]:
    """The current tree's ratios to base, by req/s and by CPU; a dash on base rows and without base."""
    compared = run.comparison(m) if m.tree == CURRENT else None
    if compared is None:
        return NONE, NONE
    return f"{compared.ratio:.2f}{TIMES}", f"{compared.cpu_ratio:.2f}{TIMES}"


def table(run: Run) -> str:
    header = (
        f"| Backend | Tasks | Scenario | Tree | req/s | {TIMES} base | p50 ms | p99 ms | errors "
        f"| CPU µs/req | {TIMES} base by CPU | core 0 taken by others "
        "| req/s c=128 | p99 ms c=128 | errors c=128 |"
    )
    lines = [header, "|" + "---|" * 15]
    for m in run.measurements:
        ratio, cpu_ratio = _ratios(run, m)
        lines.append(
            f"| {m.backend} | {tasks_label(m.tasks)} | {m.label} | {m.tree} | {m.c32.rps:,.0f} | {ratio} "
            f"| {m.c32.p50_ms:.1f} | {m.c32.p99_ms:.1f} | {_errors(m.c32)} "
            f"| {m.cpu_us:,.0f} | {cpu_ratio} | {100 * m.cpu.others_share:.0f}% "
            f"| {m.c128.rps:,.0f} | {m.c128.p99_ms:.1f} | {_errors(m.c128)} |"
        )
    return "\n".join(lines)


def memory_table(readings: Iterable[MemoryReading]) -> str:
    lines = ["| Backend | Tasks | Tree | worker RSS after seeding | after the load |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.backend} | {tasks_label(r.tasks)} | {r.tree} | {r.seeded_mb:.0f} MB | {r.loaded_mb:.0f} MB |"
        for r in readings
    ]
    return "\n".join(lines)


def markdown(run: Run, machine_line: str, guard_lines: list[str]) -> str:
    trees = "\n".join(f"- {name}: {description}" for name, description in run.trees.items())
    sections = [
        "# Benchmark results",
        f"Machine: {machine_line}",
        f"Settings: {run.settings}. Both trees run on the same `.venv`, one after the other per scenario.",
        f"Trees:\n\n{trees}",
        table(run),
        memory_table(run.readings),
        "Guard:\n\n" + "\n".join(f"- {line}" for line in guard_lines),
    ]
    return "\n\n".join(sections) + "\n"


def write(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"bench: wrote {path}", file=sys.stderr)
