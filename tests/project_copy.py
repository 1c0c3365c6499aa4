"""A copy of the project, as a learner clones it, for tests that change its files and run its tools.

The copy is a git repository of its own (one "stock" commit), so `git status` shows exactly what
a change touched, and it shares this checkout's `.venv` instead of installing another.
"""

import os
import shutil
import subprocess
from pathlib import Path

from tests.live_server import ROOT

SKIPPED = shutil.ignore_patterns(".venv", ".git", "*.db", "__pycache__", ".*_cache", ".hypothesis", "test-artifacts")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com"}
GIT_IDENTITY |= {"GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def git(project: Path, *arguments: str) -> str:
    """Run git in `project`; its output, or an AssertionError with git's own message."""
    result = subprocess.run(
        ["git", *arguments],
        cwd=project,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(arguments)}: {result.stderr}"
    return result.stdout


def project_copy(destination: Path) -> Path:
    """The project copied to `destination`, committed as "stock", sharing the environment."""
    shutil.copytree(ROOT, destination, ignore=SKIPPED)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-qm", "stock")
    return destination
