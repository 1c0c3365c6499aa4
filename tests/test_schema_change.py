"""The README's "Changing the schema" walkthrough, followed as written in a copy of the project.

The Python lines it shows are put where it says; its ```sh block runs in bash, except `make
test`, for which this test runs a check of the new field on every backend (create, read, PUT,
PATCH, through the copy's own per-backend fixtures) plus the copy's migration and schemathesis
tests (schemathesis on SQLite: the schema is the same for every backend). Afterwards
the change must have touched only the two model files, one new migration and the example
database: a new task field needs nothing else.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.live_server import ROOT
from tests.project_copy import project_copy

pytestmark = pytest.mark.slow

SECTION = "## Changing the schema"
EDIT = re.compile(
    r"In `(?P<file>[\w.]+)`, add [^`]*`class (?P<cls>\w+)`, below the `(?P<after>\w+)` line:\n\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)
FIELD_CHECK = """
import pytest

from tests.conftest import Headers


def test_the_new_field_round_trips(client, user: Headers) -> None:
    created = client.post("/tasks", json={"title": "Estimate me", "estimate_minutes": 30}, headers=user)
    assert created.status_code == 201, created.text
    path = created.headers["location"]
    assert client.get(path, headers=user).json()["estimate_minutes"] == 30
    patched = client.patch(path, json={"estimate_minutes": 45}, headers=user)
    assert patched.json()["estimate_minutes"] == 45, patched.text
    assert client.patch(path, json={"estimate_minutes": None}, headers=user).json()["estimate_minutes"] is None
    replaced = client.put(path, json={"title": "Estimate me", "estimate_minutes": 10000}, headers=user)
    assert replaced.json()["estimate_minutes"] == 10000, replaced.text
    assert client.put(path, json={"title": "No estimate"}, headers=user).json()["estimate_minutes"] is None
    listed = client.get("/tasks", headers=user).json()["items"]
    assert [task["estimate_minutes"] for task in listed] == [None]


@pytest.mark.parametrize("minutes", [0, 10001, "30"])
def test_the_new_field_refuses_what_its_type_refuses(client, user: Headers, minutes: object) -> None:
    response = client.post("/tasks", json={"title": "Estimate me", "estimate_minutes": minutes}, headers=user)
    assert response.status_code == 422, response.text
"""


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    return text[start : text.index("\n## ", start + len(SECTION))]


def apply_edit(project: Path, file: str, cls: str, after: str, code: str) -> None:
    """Insert `code` below the `after:` line of `class cls` in `file`, as the README tells a reader."""
    path = project / file
    lines = path.read_text().splitlines(keepends=True)
    class_at = next(i for i, line in enumerate(lines) if line.startswith(f"class {cls}("))
    field_at = next(i for i in range(class_at, len(lines)) if lines[i].lstrip().startswith(f"{after}:"))
    lines.insert(field_at + 1, code)
    path.write_text("".join(lines))


def run(command: list[str], project: Path, **env: str) -> str:
    result = subprocess.run(
        command, cwd=project, env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project (its own git repository, to see what changed) sharing the venv."""
    return project_copy(tmp_path / "project")


def test_the_revision_id_is_the_next_in_order() -> None:
    latest = max(path.name[:4] for path in (ROOT / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert f"--rev-id {int(latest) + 1:04d} " in walkthrough(), "the README's --rev-id must be the next revision"


def test_a_new_field_lives_in_two_files_and_a_migration(project: Path) -> None:
    section = walkthrough()
    edits = list(EDIT.finditer(section))
    assert [edit["file"] for edit in edits] == ["models.py", "db_models.py"]
    for edit in edits:
        apply_edit(project, edit["file"], edit["cls"], edit["after"], edit["code"])
    script = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert script, "the walkthrough has a ```sh block"
    commands = [line for line in script[1].splitlines() if line.strip() != "make test"]
    assert len(commands) < len(script[1].splitlines()), "the walkthrough ends by running the tests"
    run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], project)

    (project / "tests" / "test_new_field.py").write_text(FIELD_CHECK)
    run(
        [".venv/bin/pytest", "-q", "-p", "no:cacheprovider", "tests/test_new_field.py", "tests/test_migrations.py"],
        project,
    )
    run(
        [".venv/bin/pytest", "-q", "-p", "no:cacheprovider", "tests/test_schemathesis.py"],
        project,
        TEST_BACKENDS="sqlite",
    )
    (project / "tests" / "test_new_field.py").unlink()
    run([".venv/bin/ruff", "check", "."], project)

    changed = run(["git", "status", "--porcelain"], project).split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        "db_models.py",
        "migrations/versions/0005_task_estimate.py",
        "models.py",
        "tasks.db.example",
    ]
