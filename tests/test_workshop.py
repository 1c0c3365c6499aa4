"""The workshop's verifier: every exercise's checks and reference solution still work on this code.

For each `workshop/NN-*/` exercise (one test each), in a fresh copy of the project:
1. its checks fail on the stock code: collected, at least one failure, no error;
2. with `solution.patch` applied (`git apply`) and `tasks.db.example` rebuilt, its checks pass;
3. with the patch applied, the fast suite (`make test-fast`) still passes;
4. the leader's guide's reset command brings the project back to stock.
A failure names the exercise and shows pytest's own summary, so whoever changed the code knows
which exercise to update. The solution's fast suite runs on SQLite alone (`SQLITE_ONLY`), where
its SQL and migration meet the rest of the suite; the exercise checks themselves run on every
backend. `make test` runs the exercises side by side on every core (pytest -n), which keeps CI
within 15 minutes. To verify some of them only: `pytest tests/test_workshop.py -k "01 or 05"`.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.live_server import ROOT
from tests.project_copy import git, project_copy

pytestmark = pytest.mark.slow

EXERCISES = sorted(path.name for path in (ROOT / "workshop").glob("[0-9][0-9]-*") if path.is_dir())
GUIDE = ROOT / "workshop" / "README.md"
# The API suite on SQLite, with the PostgreSQL-only tests skipped: the step 1 and step 3 runs.
SQLITE_ONLY = {"TEST_BACKENDS": "sqlite", "TEST_POSTGRES_URL": ""}
SUMMARY = re.compile(r"^=+ (?P<counts>.*) in [0-9.]+s", re.MULTILINE)


def reset_command() -> str:
    """The guide's command that throws an attempt away (the line that starts with `git checkout`)."""
    lines = [line.split("#")[0].strip() for line in GUIDE.read_text().splitlines()]
    commands = [line for line in lines if line.startswith("git checkout")]
    assert len(commands) == 1, "the leader's guide gives one reset command"
    return commands[0]


def pytest_in(project: Path, *arguments: str, **settings: str) -> tuple[int, str]:
    """Run pytest in `project` the way a learner does (with some environment `settings`); the
    exit code and pytest's summary line."""
    environment = {**os.environ, **settings}
    result = subprocess.run(
        [".venv/bin/pytest", "-p", "no:cacheprovider", *arguments],
        cwd=project,
        env={**environment, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = SUMMARY.findall(result.stdout)
    return result.returncode, (summary[-1] if summary else result.stdout[-3000:] + result.stderr[-3000:])


def verify(exercise: str, project: Path) -> None:
    """The four steps of the module docstring for one exercise; an AssertionError names the step."""
    checks = f"workshop/{exercise}/test_exercise.py"
    code, summary = pytest_in(project, "-q", checks, **SQLITE_ONLY)  # failing on one backend is enough
    assert code == 1, f"on the stock code its checks must fail (exit 1), got {code}: {summary}"
    assert "failed" in summary and "error" not in summary, f"on the stock code: {summary}"

    patch = project / "workshop" / exercise / "solution.patch"
    applied = subprocess.run(["git", "apply", str(patch)], cwd=project, capture_output=True, text=True, check=False)
    assert applied.returncode == 0, f"solution.patch no longer applies:\n{applied.stderr}"
    assert git(project, "status", "--porcelain"), "solution.patch changes nothing"
    # A patch cannot carry the binary tasks.db.example: rebuild it, as `make example-db` does after a schema change.
    rebuilt = subprocess.run(
        [".venv/bin/python", "demo_data.py", "tasks.db.example"], cwd=project, capture_output=True, text=True
    )
    assert rebuilt.returncode == 0, f"with solution.patch, tasks.db.example cannot be rebuilt:\n{rebuilt.stderr}"

    code, summary = pytest_in(project, "-q", checks)
    assert code == 0, f"with solution.patch its checks must pass: {summary}"
    code, summary = pytest_in(project, "-q", "-m", "not slow", "tests", **SQLITE_ONLY)
    assert code == 0, f"with solution.patch the fast suite must still pass: {summary}"

    subprocess.run(["bash", "-c", reset_command()], cwd=project, check=True)
    assert git(project, "status", "--porcelain") == "", "the guide's reset left changes behind"


def test_there_are_at_least_eight_exercises() -> None:
    assert len(EXERCISES) >= 8, EXERCISES


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_exercise_fails_on_the_stock_code_and_passes_with_its_solution(exercise: str, tmp_path: Path) -> None:
    verify(exercise, project_copy(tmp_path / exercise))
