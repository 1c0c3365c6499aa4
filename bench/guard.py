"""The guard: the current tree against the base tree, plus a few limits that need no base.

Every line is PASS or FAIL with its figures, and `make bench` exits non-zero when one fails.
A line appears only when the run measured what it judges (see `--backends`, `--scenarios`).
"""

from dataclasses import dataclass

from bench.report import CURRENT, TIMES, Measurement, Run, tasks_label

SQL_RATIO = 0.6  # every SQLite and PostgreSQL scenario, at every size
MEMORY_RATIOS = {"get": 0.8, "post": 0.8, "patch": 0.8, "filtered": 0.15, "offset": 0.15, "cursor": 0.15}
LAST_PAGE_COST = 1.5  # the last page by cursor against the first, at the SQLite scale size
RSS_LIMIT_MB = 300.0


@dataclass(frozen=True)
class Check:
    description: str
    passed: bool
    measured: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.description}: {self.measured}"


def checks(run: Run, sqlite_scale: int, memory_scale: int) -> list[Check]:
    return [
        *ratio_checks(run),
        *error_checks(run),
        *last_page_checks(run, sqlite_scale),
        *memory_checks(run, memory_scale),
    ]


def minimum_ratio(m: Measurement, standard_tasks: int) -> float | None:
    """How much of the base tree's req/s this scenario must keep, if the guard judges it."""
    if m.backend in ("sqlite", "postgresql"):
        return SQL_RATIO
    if m.backend == "memory" and m.tasks == standard_tasks:
        return MEMORY_RATIOS.get(m.scenario)
    return None


def ratio_checks(run: Run) -> list[Check]:
    found = []
    for m in run.current():
        minimum, compared = minimum_ratio(m, run.standard_tasks), run.comparison(m)
        if minimum is not None and compared is not None:
            description = f"{m.backend} {tasks_label(m.tasks)} {m.label} ≥ {minimum}{TIMES} base"
            found.append(Check(description, compared.ratio >= minimum, compared.figures()))
    return found


def error_checks(run: Run) -> list[Check]:
    measured = run.current()
    if not measured:
        return []
    failing = [f"{m.backend} {tasks_label(m.tasks)} {m.scenario} ({m.c128.errors})" for m in measured if m.c128.errors]
    return [Check("zero errors at c=128, every scenario", not failing, ", ".join(failing) or "none")]


def last_page_checks(run: Run, tasks: int) -> list[Check]:
    first, last = run.find(CURRENT, "sqlite", "first", tasks), run.find(CURRENT, "sqlite", "last", tasks)
    if not (first and last):
        return []
    cost = first.c32.rps / last.c32.rps if last.c32.rps else float("inf")
    measured = f"{cost:.2f}{TIMES} ({last.c32.rps:,.0f} vs {first.c32.rps:,.0f} req/s){_timeout_caveat(first, last)}"
    description = f"sqlite {tasks_label(tasks)}: last page by cursor within {LAST_PAGE_COST}{TIMES} of the first page"
    return [Check(description, cost <= LAST_PAGE_COST, measured)]


def _timeout_caveat(*compared: Measurement) -> str:
    """A ratio of two runs that both hit the timeout compares two ceilings, not two costs: say so."""
    if not any(m.c32.errors for m in compared):
        return ""
    costs = " vs ".join(f"{m.cpu_us:,.0f}" for m in compared)
    return f"; CAUTION: errors at c=32, so req/s is capped by the timeout (CPU µs/req: {costs})"


def memory_checks(run: Run, tasks: int) -> list[Check]:
    wanted = (CURRENT, "memory", tasks)
    reading = next((r for r in run.readings if (r.tree, r.backend, r.tasks) == wanted), None)
    if reading is None:
        return []
    rss = max(reading.seeded_mb, reading.loaded_mb)
    description = f"memory {tasks_label(tasks)}: worker RSS ≤ {RSS_LIMIT_MB:.0f} MB"
    measured = f"{rss:.0f} MB ({reading.seeded_mb:.0f} MB after seeding, {reading.loaded_mb:.0f} MB after the load)"
    return [Check(description, rss <= RSS_LIMIT_MB, measured)]
