"""Implements `storage.Storage` over SQL by running crud's functions on the `SqlRunner`.

Each method hands one query function from `crud.py` to `sql_runner.SqlRunner`, which runs it as
one short transaction off the event loop, within the request's time budget, and turns database
failures into a 503.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

import crud
from models import Task, TaskCreate, User
from sql_runner import SqlRunner
from storage import AccountGone, EmailTaken, IdempotencyRequest, Precondition, StorageKind, TaskListing, UserCredentials

T = TypeVar("T")


class SqlStore:
    """Implements `storage.Storage` over an engine, one `crud` function per method."""

    def __init__(self, engine: Engine) -> None:
        self.kind: StorageKind = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
        self.engine = engine
        self._sql = SqlRunner(engine)

    async def _write_retrying_a_lost_race(self, work: Callable[[Connection], T]) -> T:
        """Check-then-insert work (an Idempotency-Key, the startup admin): when a concurrent
        transaction inserted the same key first (PostgreSQL), the retry finds its row instead."""
        try:
            return await self._sql.write(work)
        except IntegrityError:
            return await self._sql.write(work)

    async def ping(self) -> None:
        """Ready means able to write: on SQLite a lock held past the timeout makes this fail."""
        await self._sql.write(lambda connection: connection.execute(text("SELECT 1")))

    async def close(self) -> None:
        self._sql.close()
        self.engine.dispose()

    async def create_user(self, email: str, password_hash: str, is_admin: bool = False) -> User:
        work = partial(crud.create_user, email=email, password_hash=password_hash, is_admin=is_admin)
        try:
            return await self._sql.write(work)
        except IntegrityError as error:
            raise EmailTaken() from error

    async def get_user(self, user_id: int, token_key: str) -> User | None:
        """Read on every request, never remembered: a deleted account or a changed password locks out at once."""
        return await self._sql.read(partial(crud.get_user, user_id=user_id, token_key=token_key))

    async def get_credentials(self, email: str) -> UserCredentials | None:
        return await self._sql.read(partial(crud.get_credentials, email=email))

    async def ensure_admin(self, email: str, password_hash: str) -> User:
        work = partial(crud.ensure_admin, email=email, password_hash=password_hash)
        return await self._write_retrying_a_lost_race(work)

    async def list_users(self) -> list[User]:
        return await self._sql.read(crud.list_users)

    async def count_users(self) -> int:
        return await self._sql.read(crud.count_users)

    async def create_task(self, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None) -> Task:
        work = partial(crud.create_task, owner_id=owner_id, data=data, idempotency=idempotency)
        try:
            return await self._write_retrying_a_lost_race(work)
        except IntegrityError as error:  # still refused: the owner's row went after their token was checked
            if not await self._sql.read(partial(crud.user_exists, user_id=owner_id)):
                raise AccountGone() from error
            raise

    async def get_task(self, task_id: int, owner_id: int | None) -> Task:
        return await self._sql.read(partial(crud.get_task, task_id=task_id, owner_id=owner_id))

    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task:
        work = partial(crud.update_task, task_id=task_id, owner_id=owner_id, changes=changes, precondition=precondition)
        return await self._sql.write(work)

    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
        await self._sql.write(partial(crud.delete_task, task_id=task_id, owner_id=owner_id, precondition=precondition))

    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        return await self._sql.read(partial(crud.list_tasks, owner_id=owner_id, listing=listing))

    async def delete_all_tasks(self) -> int:
        return await self._sql.write(crud.delete_all_tasks)
