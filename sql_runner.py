"""Runs each SQL transaction off the event loop, waiting no longer than its request may.

Blocking SQL must never run on the event loop, so every call goes to a thread. SQLite has one
writer at a time: its writers take turns on a thread of their own, and readers have theirs, so
a write waiting for a lock another program holds never delays a read. Every wait (the turn, a
lock) ends at the request's deadline, `STORAGE_TIMEOUT_SECONDS` after it arrived; past it, or
when the database fails, the caller gets `StorageUnavailable` (a 503 with Retry-After). So does
a write when the SQLite file was deleted or replaced under the server: it went to a file that
is no longer there, and answering 2xx for it would promise what a restart takes back.
"""

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from database import POOL_SIZE, sqlite_pragma, writer
from errors import seconds_left
from storage import StorageUnavailable

T = TypeVar("T")

# SQLite reads are short and CPU-bound: a few threads suffice. PostgreSQL gets one thread per
# pooled connection, so waits on the network overlap and no thread ever waits for a connection.
SQLITE_READERS = 4
DEFAULT_TIMEOUT_SECONDS = 5.0  # STORAGE_TIMEOUT_SECONDS' default, for an engine without a pool timeout
POSTGRES_WAITS = text("SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)")


class SqlRunner:
    """`await runner.read(work)` or `runner.write(work)`: `work(connection)` in one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = writer(engine)
        self._sqlite = engine.dialect.name == "sqlite"
        # The engine's own timeout is STORAGE_TIMEOUT_SECONDS (see database.create_db_engine).
        pool = engine.pool
        self.timeout = pool.timeout() if isinstance(pool, QueuePool) else DEFAULT_TIMEOUT_SECONDS
        self._readers = ThreadPoolExecutor(SQLITE_READERS if self._sqlite else POOL_SIZE, thread_name_prefix="sql")
        # On PostgreSQL writers lock rows, not the database: they share the readers' threads.
        self._writers = ThreadPoolExecutor(1, thread_name_prefix="sql-writer") if self._sqlite else self._readers
        self._file = SqliteFile.of(engine) if self._sqlite else None

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(work, write=False)

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await self._run(work, write=True)

    def close(self) -> None:
        self._writers.shutdown()
        self._readers.shutdown()

    async def _run(self, work: Callable[[Connection], T], write: bool) -> T:
        # The deadline is read here, on the event loop: the request it belongs to is known only here.
        deadline = time.monotonic() + seconds_left(self.timeout)
        threads = self._writers if write else self._readers
        try:
            return await asyncio.get_running_loop().run_in_executor(threads, self._transaction, work, write, deadline)
        except (OperationalError, PoolTimeout) as error:  # locked past the deadline, or unreachable
            raise StorageUnavailable() from error

    def _transaction(self, work: Callable[[Connection], T], write: bool, deadline: float) -> T:
        """Runs on a thread: `work` in a transaction whose waits end at `deadline`."""
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise StorageUnavailable()  # its turn came after the request's time was up
        with (self._writer if write else self.engine).connect() as connection:
            if self._sqlite:
                sqlite_pragma(connection, f"busy_timeout = {remaining_ms}")  # BEGIN (IMMEDIATE) is what waits
            with connection.begin():
                if write and not self._sqlite:  # writers wait for row locks; PostgreSQL's reads never do
                    connection.execute(POSTGRES_WAITS, {"ms": str(remaining_ms)})
                result = work(connection)
        if write and self._file is not None:
            self._file.check()  # after the commit, which may have gone into a file that is gone
        return result


class SqliteFile:
    """The database file the store opened, known by its identity (device, inode), not its name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = self._identity()

    @classmethod
    def of(cls, engine: Engine) -> "SqliteFile | None":
        database = engine.url.database
        if not database or database == ":memory:":
            return None
        with engine.connect():  # creates the file if it is new
            pass
        return cls(Path(database).resolve())

    def _identity(self) -> tuple[int, int]:
        status = os.stat(self.path)
        return status.st_dev, status.st_ino

    def check(self) -> None:
        """Unavailable when the file was deleted, or another one now has its name (a restore)."""
        try:
            if self._identity() == self.identity:
                return
        except FileNotFoundError:
            pass
        raise StorageUnavailable()
