"""Demo users and tasks, so the first visit to /docs has something to show.

Loaded at startup into an empty store when DEMO_DATA is on (the default in development),
and written to the committed `tasks.db.example` by `python demo_data.py tasks.db.example`
(`make example-db`). The logins are listed in the README.
"""

import sys
from datetime import date, timedelta
from pathlib import Path

import anyio

from auth import hash_password
from database import create_db_engine, upgrade_to_head
from models import TaskCreate, TaskStatus
from sql_store import SqlStore
from storage import Storage

DEMO_USERS = (
    ("admin@example.com", "admin-password", True),
    ("alice@example.com", "alice-password", False),
    ("bob@example.com", "bob-password", False),
)

# (owner, title, description, status, priority, days until due or None, tags)
DEMO_TASKS = (
    ("alice", "Write API tutorial", "Cover validation and auth", "in_progress", 4, 10, ["docs", "writing"]),
    ("alice", "Review pull requests", None, "pending", 3, 1, ["code-review"]),
    ("alice", "Plan the FastAPI workshop", "Agenda, exercises and a demo script", "pending", 5, 14, ["workshop"]),
    ("alice", "Book the meeting room", None, "completed", 2, -3, ["workshop", "admin"]),
    ("alice", "Update dependencies", "Bump FastAPI and SQLAlchemy, run the tests", "pending", 2, None, ["maintenance"]),
    ("alice", "Fix flaky login test", "Happens once in fifty runs", "cancelled", 1, None, ["bug", "tests"]),
    ("alice", "Record a Swagger UI demo", None, "pending", 3, 7, ["docs", "video"]),
    ("bob", "Buy groceries", "Milk, eggs, coffee", "pending", 2, 0, ["home"]),
    ("bob", "Renew passport", "Photos first", "in_progress", 4, 30, ["admin"]),
    ("bob", "Read 'Designing Data-Intensive Applications'", None, "pending", 1, None, ["reading"]),
    (
        "bob",
        "Set up PostgreSQL locally",
        "Follow the README's upgrade path",
        "completed",
        3,
        -1,
        ["learning", "database"],
    ),
    ("bob", "Water the plants", None, "pending", 1, 2, ["home"]),
)


async def load_demo_data(db: Storage, wait_seconds: float) -> None:
    """Create the demo users and their tasks (the caller checks that the store is empty)."""
    user_ids = {}
    for email, password, is_admin in DEMO_USERS:
        user = await db.create_user(email, await hash_password(password, wait_seconds), is_admin=is_admin)
        user_ids[email.split("@")[0]] = user.id
    today = date.today()
    for owner, title, description, status, priority, due_in_days, tags in DEMO_TASKS:
        task = TaskCreate(
            title=title,
            description=description,
            status=TaskStatus(status),
            priority=priority,
            due_date=today + timedelta(days=due_in_days) if due_in_days is not None else None,
            tags=tags,
        )
        await db.create_task(user_ids[owner], task)


def write_example_database(path: Path) -> None:
    """A fresh SQLite file at the newest migration holding the demo data, as one self-contained file."""
    path.unlink(missing_ok=True)
    engine = create_db_engine(f"sqlite:///{path}", timeout_seconds=5)
    upgrade_to_head(engine)
    anyio.run(load_demo_data, SqlStore(engine), 5)
    connection = engine.raw_connection()  # outside any transaction, as this PRAGMA requires
    try:
        connection.cursor().execute("PRAGMA journal_mode=DELETE")  # fold the WAL back in: one file
    finally:
        connection.close()
    engine.dispose()


if __name__ == "__main__":
    write_example_database(Path(sys.argv[1] if len(sys.argv) > 1 else "tasks.db.example"))
