"""Checks for exercise 05: the tests you write in test_my_api.py are real tests.

They must pass on the project as it is, and fail on copies of it with a bug planted in the SQL
backend. Your file runs without any conftest.py (`--noconftest`), so it builds its own app.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project_copy import SKIPPED  # what a copy of the project leaves out

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
YOUR_FILE = (HERE / "test_my_api.py").relative_to(ROOT)
PYTEST = (sys.executable, "-m", "pytest", "-q", "--tb=line", "--show-capture=no", "-p", "no:cacheprovider")
NEEDED = ("create_app", "dependency_overrides", "get_db", "SqlStore")


@dataclass(frozen=True)
class Bug:
    """A bug planted by replacing `find` (which must occur exactly once) in `file`."""

    file: str
    find: str
    replace: str
    effect: str


BUGS = {
    "patch-resets-unsent-fields": Bug(
        "crud.py",
        "    _check(row, precondition)\n    fields = ",
        "    _check(row, precondition)\n    changes = {**TaskCreate(title=row.title).model_dump(), **changes}\n"
        "    fields = ",
        "PATCH resets every field it was not sent to its default, as a PUT would",
    ),
    "patch-ignores-the-owner": Bug(
        "sql_store.py",
        "crud.update_task, task_id=task_id, owner_id=owner_id,",
        "crud.update_task, task_id=task_id, owner_id=None,",
        "PATCH changes another user's task instead of answering 404",
    ),
    "patch-ignores-if-match": Bug(
        "sql_store.py",
        "changes=changes, precondition=precondition",
        "changes=changes, precondition=None",
        "PATCH ignores If-Match, so a stale ETag changes the task instead of getting 412",
    ),
    "patch-keeps-updated-at": Bug(
        "crud.py",
        '"updated_at": utc_now(), ',
        "",
        "PATCH leaves updated_at as it was",
    ),
}


def your_source() -> str:
    path = ROOT / YOUR_FILE
    if not path.exists():
        pytest.fail(
            f"Write your tests in {YOUR_FILE}: it does not exist yet (README.md says what to test)", pytrace=False
        )
    return path.read_text()


def run_your_tests(project: Path, *options: str) -> tuple[int, str]:
    """pytest on your file in `project`, without conftest.py: its exit code and its output."""
    try:
        result = subprocess.run(
            [*PYTEST, "--noconftest", *options, str(YOUR_FILE)],
            cwd=project,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, "pytest did not finish within 10 minutes"
    output = (result.stdout + result.stderr).strip()
    return result.returncode, "\n".join(output.splitlines()[-30:])


def test_your_file_has_at_least_three_tests() -> None:
    your_source()
    code, output = run_your_tests(ROOT, "--collect-only")
    collected = re.search(r"(\d+) tests? collected", output)
    assert code == 0 and collected, f"pytest could not collect the tests in {YOUR_FILE}:\n{output}"
    count = int(collected[1])
    assert count >= 3, f"{YOUR_FILE} has {count} test(s); write at least 3 (README.md lists what to test)"


def test_your_tests_build_their_own_app_on_sqlite() -> None:
    source = your_source()
    missing = [name for name in NEEDED if name not in source]
    assert not missing, (
        f"{YOUR_FILE} never mentions {', '.join(missing)}: build the app with create_app(settings) and set "
        "app.dependency_overrides[get_db] to a SqlStore on a migrated SQLite file"
    )
    imports_the_suite = re.search(r"^\s*(from|import)\s+tests\b", source, re.MULTILINE)
    assert not imports_the_suite, f"{YOUR_FILE} imports from tests/: build your fixtures in your own file"


def test_your_tests_pass_on_the_project_as_it_is() -> None:
    your_source()
    code, output = run_your_tests(ROOT)
    borrowed = re.search(r"fixture '(\w+)' not found", output)
    assert not borrowed, (
        f"Your tests use the fixture '{borrowed[1] if borrowed else ''}', which {YOUR_FILE} does not define: "
        "the checks run it without conftest.py, so define every fixture you use in your file"
    )
    assert code == 0, f"Your tests must pass on the project as it is (pytest exit {code}):\n{output}"


def broken_copy(bug: Bug, tmp_path: Path) -> Path:
    """A copy of the project (your file included) with `bug` planted."""
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=SKIPPED)
    source = project / bug.file
    text = source.read_text()
    assert text.count(bug.find) == 1, f"{bug.file} changed since this check was written: update BUGS in {__file__}"
    source.write_text(text.replace(bug.find, bug.replace))
    return project


@pytest.mark.parametrize("bug", BUGS.values(), ids=BUGS.keys())
def test_your_tests_catch_a_planted_bug(bug: Bug, tmp_path: Path) -> None:
    your_source()
    code, output = run_your_tests(broken_copy(bug, tmp_path))
    assert code != 0, (
        f"All your tests passed on a copy of the app where {bug.effect} (a bug planted in {bug.file}). "
        "Write a test that fails there; the bug is in the SQL backend, so your app must run on SQLite"
    )
    assert code == 1, f"pytest could not run your tests on the broken copy (exit {code}):\n{output}"
