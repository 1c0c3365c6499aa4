"""Engines for SQLite and PostgreSQL, configured for many concurrent requests.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and
`BEGIN IMMEDIATE` for write transactions: taking the write lock up front means a
transaction never fails half-way on a read-to-write lock upgrade. Migrations run with
foreign keys off and checked before the commit (see `migration_transaction`).
"""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

# No overflow: N workers hold at most N x 40 PostgreSQL connections (sql_runner.SqlRunner runs
# one thread per connection there; on SQLite it uses only 5 of them).
POOL_SIZE = 40
BEGIN_IMMEDIATE = "sqlite_begin_immediate"
ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def create_db_engine(url: str, timeout_seconds: float) -> Engine:
    """An engine whose waits (lock, pool, connect) all give up after `timeout_seconds`."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": timeout_seconds, "check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=timeout_seconds,
        )
        event.listen(engine, "connect", partial(_configure_sqlite_connection, timeout_seconds=timeout_seconds))
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    return create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=timeout_seconds,
        pool_pre_ping=True,  # a restarted PostgreSQL costs one retry, not an error
        connect_args={"connect_timeout": max(1, int(timeout_seconds))},
    )


def writer(engine: Engine) -> Engine:
    """The same engine, but its SQLite transactions start with the write lock held."""
    return engine.execution_options(**{BEGIN_IMMEDIATE: True})


def _configure_sqlite_connection(dbapi_connection: Any, _record: ConnectionPoolEntry, timeout_seconds: float) -> None:
    dbapi_connection.isolation_level = None  # the driver must not BEGIN by itself; see below
    cursor = dbapi_connection.cursor()
    _use_wal(cursor, timeout_seconds)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _use_wal(cursor: sqlite3.Cursor, timeout_seconds: float) -> None:
    """Switch the file to WAL (it stays so). On a new file SQLite refuses at once, without its
    busy wait, while another process holds a lock, as when two workers start together: wait here."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite_transaction(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(BEGIN_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


def upgrade_to_head(engine: Engine, config: Config | None = None) -> None:
    """Apply every pending migration (of `config`, alembic.ini's by default). The write lock is
    taken first, so two workers starting together on one SQLite file migrate it once instead of
    colliding."""
    config = config or alembic_config()
    with migration_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction for migrations; on SQLite, with foreign keys off until it ends.

    SQLite alters a table by copying it and dropping the old one (Alembic's batch mode): with
    foreign keys on, that drop would delete every row referencing the table. They are checked
    instead before the commit, when a migration ran (a startup with none to run scans nothing)."""
    with writer(engine).connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        sqlite_pragma(connection, "foreign_keys=OFF")  # a no-op inside a transaction: before BEGIN
        try:
            with connection.begin():
                before = _revision(connection)
                yield connection
                if _revision(connection) != before:
                    _check_foreign_keys(connection)
        finally:
            sqlite_pragma(connection, "foreign_keys=ON")  # the connection goes back to the pool


def sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Set a PRAGMA that must come before BEGIN (`foreign_keys`, `busy_timeout`): on the driver's
    own cursor, since a SQLAlchemy statement would begin the transaction first."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _check_foreign_keys(connection: Connection) -> None:
    """Raise (so the transaction rolls back) if any row references a row that does not exist."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        examples = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in broken[:5])
        raise RuntimeError(
            f"Migration rolled back: PRAGMA foreign_key_check found {len(broken)} broken foreign key(s): {examples}"
        )


def schema_is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        current = _revision(connection)
    return current == ScriptDirectory.from_config(alembic_config()).get_current_head()
