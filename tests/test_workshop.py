"""The workshop's verifier: every exercise's checks and reference solution still work on this code.

For each `workshop/NN-*/` exercise, in a fresh copy of the project:
1. its checks fail on the stock code: collected, at least one failure, no error;
2. with `solution.patch` applied (`git apply`) and tasks.db.example rebuilt, its checks pass;
3. with the patch applied, the fast suite (`make test-fast`) still passes.
A failure names the exercise and shows pytest's own summary, so whoever changed the code knows
which exercise to update.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live_server import ROOT

pytestmark = pytest.mark.slow

EXERCISES = sorted(path.name for path in (ROOT / "workshop").glob("[0-9][0-9]-*") if path.is_dir())
SKIPPED = shutil.ignore_patterns(".venv", ".git", "*.db", "__pycache__", ".*_cache", ".hypothesis", "test-artifacts")
SUMMARY = re.compile(r"^=+ (?P<counts>.*) in [0-9.]+s", re.MULTILINE)


def pytest_in(project: Path, *arguments: str) -> tuple[int, str]:
    """Run pytest in `project` the way a learner does; the exit code and pytest's summary line."""
    result = subprocess.run(
        [".venv/bin/pytest", "-p", "no:cacheprovider", *arguments],
        cwd=project,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = SUMMARY.findall(result.stdout)
    return result.returncode, (summary[-1] if summary else result.stdout[-3000:] + result.stderr[-3000:])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project as a learner clones it, sharing the installed environment."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=SKIPPED)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def test_there_are_at_least_eight_exercises() -> None:
    assert len(EXERCISES) >= 8, EXERCISES


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_exercise_fails_on_the_stock_code_and_passes_with_its_solution(project: Path, exercise: str) -> None:
    checks = f"workshop/{exercise}/test_exercise.py"
    code, summary = pytest_in(project, "-q", checks)
    assert code == 1, f"{exercise}: on the stock code its checks must fail (exit 1), got {code}: {summary}"
    assert "failed" in summary and "error" not in summary, f"{exercise}: {summary}"

    patch = project / "workshop" / exercise / "solution.patch"
    applied = subprocess.run(["git", "apply", str(patch)], cwd=project, capture_output=True, text=True, check=False)
    assert applied.returncode == 0, f"{exercise}: solution.patch no longer applies:\n{applied.stderr}"
    # A patch cannot carry the binary tasks.db.example: rebuild it, as `make example-db` does after a schema change.
    command = [".venv/bin/python", "demo_data.py", "tasks.db.example"]
    rebuilt = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert rebuilt.returncode == 0, (
        f"{exercise}: with solution.patch, tasks.db.example cannot be rebuilt:\n{rebuilt.stderr}"
    )

    code, summary = pytest_in(project, "-q", checks)
    assert code == 0, f"{exercise}: with solution.patch its checks must pass: {summary}"
    code, summary = pytest_in(project, "-q", "-m", "not slow", "tests")
    assert code == 0, f"{exercise}: with solution.patch the fast suite must still pass: {summary}"
