"""Engines for SQLite and PostgreSQL, configured for many concurrent requests.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and
`BEGIN IMMEDIATE` for write transactions: taking the write lock up front means a
transaction never fails half-way on a read-to-write lock upgrade.
"""

import sqlite3
import time
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


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration. The write lock is taken first, so two workers starting
    together on one SQLite file migrate it once instead of colliding."""
    config = alembic_config()
    with writer(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == ScriptDirectory.from_config(alembic_config()).get_current_head()
