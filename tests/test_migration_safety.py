"""Schema changes never lose data: every table keeps its rows through upgrade, downgrade, upgrade.

SQLite alters a table by copying it and dropping the old one (Alembic's batch mode); with foreign
keys on, that drop would also delete every row that references the table. A throwaway migration
that does this to `tasks` is put on top of the project's head, in a copy of `migrations/`, and run
on a populated database through the app's startup path and through the `alembic` command.

Runs on SQLite always and on PostgreSQL when TEST_POSTGRES_URL is set.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, table

from database import ALEMBIC_INI, alembic_config, create_db_engine, upgrade_to_head
from tests.conftest import emptied_postgres, make_settings, migrate, running

ROOT = Path(__file__).resolve().parent.parent
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head() or "base"

# A first schema change as a learner writes it: a column with a CHECK. SQLite can only add the
# CHECK by rebuilding the table; PostgreSQL alters it in place (env.py uses batch mode on SQLite only).
THROWAWAY = """
import sqlalchemy as sa
from alembic import op

revision = "throwaway"
down_revision = "{head}"


def recreate() -> str:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("tasks", recreate=recreate()) as batch:
        batch.add_column(sa.Column("estimate_hours", sa.Integer(), nullable=True))
        batch.create_check_constraint(op.f("ck_tasks_estimate_hours"), "estimate_hours >= 0")


def downgrade() -> None:
    with op.batch_alter_table("tasks", recreate=recreate()) as batch:
        batch.drop_constraint(op.f("ck_tasks_estimate_hours"), type_="check")
        batch.drop_column("estimate_hours")
"""

# A migration that leaves a tag pointing at no task: the check before the commit must refuse it.
ORPHAN = """
from alembic import op

revision = "orphan"
down_revision = "{head}"


def upgrade() -> None:
    op.execute("INSERT INTO task_tags (task_id, position, tag) VALUES (999999, 0, 'orphan')")


def downgrade() -> None:
    op.execute("DELETE FROM task_tags WHERE task_id = 999999")
"""


def migrations_with(tmp_path: Path, migration: str) -> Path:
    """An alembic.ini whose migrations are the project's plus `migration` on top of head."""
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "migrations" / "versions" / "on_top.py").write_text(migration.format(head=HEAD))
    shutil.copy(ALEMBIC_INI, tmp_path / "alembic.ini")  # its script_location is relative to the file
    return tmp_path / "alembic.ini"


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    return migrations_with(tmp_path, THROWAWAY)


@pytest.fixture(params=["sqlite", "postgresql"])
def populated(request: pytest.FixtureRequest, tmp_path: Path, ini: Path) -> Iterator[Engine]:
    """A copy of tasks.db.example, or the session's PostgreSQL database holding the same demo data."""
    if request.param == "sqlite":
        shutil.copy(ROOT / "tasks.db.example", tmp_path / "tasks.db")
        engine = create_db_engine(f"sqlite:///{tmp_path / 'tasks.db'}", 5)
        yield engine
        engine.dispose()
        return
    engine = emptied_postgres(request)
    with running(make_settings(database_url=url_of(engine), demo_data=True)):
        pass  # the startup loads the demo data
    yield engine
    migrate(engine, command.downgrade, HEAD, Config(str(ini)))  # back to what the other tests expect


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        names = inspect(connection).get_table_names()
        return {name: connection.execute(select(func.count()).select_from(table(name))).scalar_one() for name in names}


def alembic_command(engine: Engine, ini: Path, *arguments: str) -> None:
    """`alembic -c ini ...` as a developer runs it: env.py opens DATABASE_URL itself."""
    environment = {**os.environ, "DATABASE_URL": url_of(engine)}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), *arguments],
        cwd=ROOT,  # alembic.ini's prepend_sys_path, so env.py imports this project
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def run_step(path: str, engine: Engine, ini: Path, step: str, revision: str) -> None:
    if path == "cli":
        alembic_command(engine, ini, step, revision)
    elif step == "upgrade":
        upgrade_to_head(engine, Config(str(ini)))
    else:
        migrate(engine, command.downgrade, revision, Config(str(ini)))


@pytest.mark.parametrize("path", ["app", "cli"])
def test_a_rebuilt_table_keeps_every_row_of_every_table(populated: Engine, ini: Path, path: str) -> None:
    start = row_counts(populated)
    assert start["task_tags"] > 0  # rows that reference `tasks`: what a cascading drop would delete
    for step, revision in (("upgrade", "head"), ("downgrade", HEAD), ("upgrade", "head")):
        run_step(path, populated, ini, step, revision)
        assert row_counts(populated) == start, f"{step} to {revision}"
    assert "estimate_hours" in {column["name"] for column in inspect(populated).get_columns("tasks")}


def test_the_last_migration_steps_down_and_up_keeping_every_row(populated: Engine) -> None:
    upgrade_to_head(populated)  # tasks.db.example may predate the newest migration
    start = row_counts(populated)
    assert start["task_tags"] > 0
    migrate(populated, command.downgrade, "-1")
    kept = row_counts(populated)
    assert kept == {name: start[name] for name in kept}  # it may drop a table it added, never others' rows
    upgrade_to_head(populated)
    assert row_counts(populated) == start


def test_a_migration_that_breaks_a_foreign_key_is_rolled_back(tmp_path: Path) -> None:
    shutil.copy(ROOT / "tasks.db.example", tmp_path / "tasks.db")
    engine = create_db_engine(f"sqlite:///{tmp_path / 'tasks.db'}", 5)
    start = row_counts(engine)
    with pytest.raises(RuntimeError, match="foreign key"):
        upgrade_to_head(engine, Config(str(migrations_with(tmp_path, ORPHAN))))
    assert row_counts(engine) == start
    with engine.connect() as connection:  # the pool's one connection: the one that migrated
        assert MigrationContext.configure(connection).get_current_revision() == HEAD
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    engine.dispose()
