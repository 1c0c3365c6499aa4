"""The source trees a run measures: the working tree, and an earlier commit checked out beside it.

Each tree serves and seeds itself: its server is its own `bench/server.py` (cwd and sys.path
are that tree, so every import is its own code) and its SQL data comes from its own
`bench.dataset.seed_sql`, so the schema is the one its migrations build. What the harness
asks of a tree is only that: `bench.server:app` (reading DATABASE_URL and BENCH_SEED_TASKS)
and `seed_sql(url, count)`, with the user of `bench/dataset.py`.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ROOT

REQUIRED = ("bench/server.py", "bench/dataset.py")
SEED = "import sys; from bench.dataset import seed_sql; seed_sql(sys.argv[1], int(sys.argv[2]))"


@dataclass(frozen=True)
class Tree:
    """A checkout to measure: `name` labels its rows ("base" or "current")."""

    name: str
    root: Path
    description: str


def git(*args: str) -> str:
    answer = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        sys.exit(f"bench: git {' '.join(args)} failed: {answer.stderr.strip()}")
    return answer.stdout.strip()


def current_tree() -> Tree:
    """The working tree as it is, uncommitted changes included."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    changes = " + uncommitted changes" if dirty else ""
    return checked(Tree("current", ROOT, f"working tree at {git('log', '-1', '--format=%h')}{changes}"))


@contextmanager
def base_tree(commit: str) -> Iterator[Tree]:
    """`commit` in a temporary detached worktree, removed afterwards; it runs on this `.venv`."""
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="tasks-bench-base-"))
    root = parent / "tree"
    git("worktree", "add", "--detach", "--quiet", str(root), sha)
    try:
        yield checked(Tree("base", root, git("log", "-1", "--format=%h %s", sha)))
    finally:
        git("worktree", "remove", "--force", str(root))
        shutil.rmtree(parent, ignore_errors=True)


def checked(tree: Tree) -> Tree:
    missing = [path for path in REQUIRED if not (tree.root / path).exists()]
    if missing:
        sys.exit(f"bench: the {tree.name} tree ({tree.description}) has no {', '.join(missing)}")
    return tree


def seed(tree: Tree, url: str, tasks: int) -> None:
    """Seed a SQL database with the tree's own code, in a process of its own (`python -c` puts
    the cwd first on sys.path, so `bench` and the app's modules are that tree's)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", SEED, url, str(tasks)], cwd=tree.root, check=True)
    backend = url.split(":")[0].split("+")[0]
    print(f"bench: {tree.name}: seeded {tasks:,} tasks into {backend} in {time.monotonic() - started:.0f} s")
