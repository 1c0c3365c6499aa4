"""The SQL backend: plain SQLAlchemy functions, and `SqlStore`, which runs them off the event loop.

Each function takes a `Session` and does one short transaction's work, like a flaskr
view's queries. `SqlStore` opens the session in a worker thread (blocking SQL must never
run on the event loop) and turns lost connections and lock timeouts into a 503.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, delete, func, or_, select, text, tuple_
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import QueuePool
from starlette.concurrency import run_in_threadpool

import db_models
from database import writer
from models import SortField, SortOrder, Task, TaskCreate, TaskQuery, User
from storage import (
    EmailTaken,
    IdempotencyKeyReused,
    IdempotencyRequest,
    Precondition,
    PreconditionFailed,
    SortPosition,
    StorageKind,
    StorageUnavailable,
    TaskListing,
    TaskNotFound,
    UserCredentials,
    utc_now,
)

T = TypeVar("T")


# --- users -------------------------------------------------------------------


def create_user(session: Session, email: str, password_hash: str, is_admin: bool = False) -> User:
    row = db_models.User(email=email, password_hash=password_hash, is_admin=is_admin, created_at=utc_now())
    session.add(row)
    session.flush()
    return User.model_validate(row)


def get_user(session: Session, user_id: int) -> User | None:
    row = session.get(db_models.User, user_id)
    return User.model_validate(row) if row else None


def get_credentials(session: Session, email: str) -> UserCredentials | None:
    row = session.scalar(select(db_models.User).where(db_models.User.email == email))
    return UserCredentials(User.model_validate(row), row.password_hash) if row else None


def ensure_admin(session: Session, email: str, password_hash: str) -> User:
    row = session.scalar(select(db_models.User).where(db_models.User.email == email))
    if row is None:
        return create_user(session, email, password_hash, is_admin=True)
    row.is_admin, row.password_hash = True, password_hash
    return User.model_validate(row)


def list_users(session: Session) -> list[User]:
    return [User.model_validate(row) for row in session.scalars(select(db_models.User).order_by(db_models.User.id))]


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(db_models.User)) or 0


# --- tasks -------------------------------------------------------------------


def _set_fields(row: db_models.Task, fields: dict[str, Any]) -> None:
    """Copy API fields onto a row, keeping the derived search columns and tag rows in step."""
    for name, value in fields.items():
        if name == "tags":
            row.tag_rows = [db_models.TaskTag(position=index, tag=tag) for index, tag in enumerate(value)]
        else:
            setattr(row, name, value)
    row.title_key = row.title.lower()
    row.description_key = row.description.lower() if row.description is not None else None


def _find(session: Session, task_id: int, owner_id: int | None, for_update: bool = False) -> db_models.Task:
    statement = select(db_models.Task).where(db_models.Task.id == task_id)
    if owner_id is not None:
        statement = statement.where(db_models.Task.owner_id == owner_id)
    if for_update:  # PostgreSQL: lock the row so check-then-write is atomic; SQLite holds the write lock already
        statement = statement.with_for_update()
    row = session.scalar(statement)
    if row is None:
        raise TaskNotFound(task_id)
    return row


def _check(row: db_models.Task, precondition: Precondition | None) -> None:
    if precondition is not None and not precondition.allows(row.version):
        raise PreconditionFailed(row.id)


def create_task(
    session: Session, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None
) -> Task:
    if idempotency is not None:
        earlier = session.get(db_models.IdempotencyKey, (owner_id, idempotency.key))
        if earlier is not None and earlier.created_at >= idempotency.not_before:
            if earlier.fingerprint != idempotency.fingerprint:
                raise IdempotencyKeyReused()
            return Task.model_validate_json(earlier.response_body)
        if earlier is not None:  # expired: the key may be used afresh
            session.delete(earlier)
            session.flush()
    now = utc_now()
    row = db_models.Task(owner_id=owner_id, created_at=now, updated_at=now)
    _set_fields(row, data.model_dump())
    session.add(row)
    session.flush()
    task = Task.model_validate(row)
    if idempotency is not None:
        session.add(
            db_models.IdempotencyKey(
                owner_id=owner_id,
                key=idempotency.key,
                fingerprint=idempotency.fingerprint,
                response_body=task.model_dump_json(),
                created_at=now,
            )
        )
    return task


def get_task(session: Session, task_id: int, owner_id: int | None) -> Task:
    return Task.model_validate(_find(session, task_id, owner_id))


def update_task(
    session: Session, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
) -> Task:
    row = _find(session, task_id, owner_id, for_update=True)
    _check(row, precondition)
    _set_fields(row, {**changes, "updated_at": utc_now()})
    session.flush()  # UPDATE … WHERE id = ? AND version = ? (the mapper's version_id_col)
    return Task.model_validate(row)


def delete_task(session: Session, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
    row = _find(session, task_id, owner_id, for_update=True)
    _check(row, precondition)
    session.delete(row)
    session.flush()


def delete_all_tasks(session: Session) -> int:
    result = session.execute(delete(db_models.Task))
    return int(getattr(result, "rowcount", 0))


SORT_COLUMNS: dict[SortField, InstrumentedAttribute[Any]] = {
    SortField.created_at: db_models.Task.created_at,
    SortField.updated_at: db_models.Task.updated_at,
    SortField.priority: db_models.Task.priority,
    SortField.title: db_models.Task.title_key,
    SortField.due_date: db_models.Task.due_date,
}


def _escape_like(text_value: str) -> str:
    return text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(owner_id: int | None, query: TaskQuery) -> list[ColumnElement[bool]]:
    task = db_models.Task
    conditions: list[ColumnElement[bool]] = []
    if owner_id is not None:
        conditions.append(task.owner_id == owner_id)
    if query.status:
        conditions.append(task.status.in_([status.value for status in query.status]))
    if query.priority is not None:
        conditions.append(task.priority == query.priority)
    for tag in query.tag:
        tagged = select(db_models.TaskTag.task_id).where(db_models.TaskTag.tag == tag)
        conditions.append(task.id.in_(tagged))
    if query.q is not None:
        pattern = f"%{_escape_like(query.q.lower())}%"
        conditions.append(
            or_(task.title_key.like(pattern, escape="\\"), task.description_key.like(pattern, escape="\\"))
        )
    if query.due_before is not None:
        conditions.append(task.due_date <= query.due_before)
    if query.due_after is not None:
        conditions.append(task.due_date >= query.due_after)
    return conditions


def _after(position: SortPosition, query: TaskQuery) -> ColumnElement[bool]:
    """The keyset predicate: rows that sort strictly after the cursor's position."""
    column, task_id = SORT_COLUMNS[query.sort_by], db_models.Task.id
    descending = query.order is SortOrder.desc
    if position.value is None:  # inside the trailing block of tasks without a due date
        return column.is_(None) & (task_id < position.task_id if descending else task_id > position.task_id)
    key, cursor_key = tuple_(column, task_id), tuple_(position.value, position.task_id)
    beyond = key < cursor_key if descending else key > cursor_key
    return or_(column.is_(None), beyond) if query.sort_by is SortField.due_date else beyond


def list_tasks(session: Session, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
    query = listing.query
    conditions = _filters(owner_id, query)
    total = session.scalar(select(func.count()).select_from(db_models.Task).where(*conditions)) or 0
    column = SORT_COLUMNS[query.sort_by]
    descending = query.order is SortOrder.desc
    statement = (
        select(db_models.Task)
        .where(*conditions)
        .order_by(
            (column.desc() if descending else column.asc()).nulls_last(),
            db_models.Task.id.desc() if descending else db_models.Task.id.asc(),
        )
        .limit(query.limit + 1)
    )
    if listing.after is not None:
        statement = statement.where(_after(listing.after, query))
    else:
        statement = statement.offset(query.offset or 0)
    return [Task.model_validate(row) for row in session.scalars(statement)], total


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


# --- the Storage implementation ----------------------------------------------


class SqlStore:
    """Implements `storage.Storage` over an engine; every call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.kind: StorageKind = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
        self.engine = engine
        self._reading = sessionmaker(engine, expire_on_commit=False)
        self._writing = sessionmaker(writer(engine), expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue on a lock, which wakes
        # the next one at once; SQLite's busy handler polls, so under load it can starve a thread
        # until its timeout. The wait is bounded by the engine's own (STORAGE_TIMEOUT_SECONDS).
        self._sqlite_writers = threading.Lock() if self.kind == "sqlite" else None
        self._wait_seconds = engine.pool.timeout() if isinstance(engine.pool, QueuePool) else -1

    @contextmanager
    def _turn(self, write: bool) -> Iterator[None]:
        """A write turn on SQLite (see __init__); reads, and every PostgreSQL call, never wait here."""
        if not write or self._sqlite_writers is None:
            yield
            return
        if not self._sqlite_writers.acquire(timeout=self._wait_seconds):
            raise StorageUnavailable()
        try:
            yield
        finally:
            self._sqlite_writers.release()

    async def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        def in_transaction() -> T:
            with self._turn(write), (self._writing if write else self._reading).begin() as session:
                return work(session)

        try:
            return await run_in_threadpool(in_transaction)
        except (OperationalError, PoolTimeout) as error:  # locked past the timeout, or unreachable
            raise StorageUnavailable() from error

    async def _write_retrying_a_lost_race(self, work: Callable[[Session], T]) -> T:
        """Check-then-insert work (an Idempotency-Key, the startup admin): when a concurrent
        transaction inserted the same key first (PostgreSQL), the retry finds its row instead."""
        try:
            return await self._run(work, write=True)
        except IntegrityError:
            return await self._run(work, write=True)

    async def ping(self) -> None:
        """Ready means able to write: on SQLite a lock held past the timeout makes this fail."""
        await self._run(ping, write=True)

    async def close(self) -> None:
        self.engine.dispose()

    async def create_user(self, email: str, password_hash: str, is_admin: bool = False) -> User:
        try:
            return await self._run(
                partial(create_user, email=email, password_hash=password_hash, is_admin=is_admin), True
            )
        except IntegrityError as error:
            raise EmailTaken() from error

    async def get_user(self, user_id: int) -> User | None:
        return await self._run(partial(get_user, user_id=user_id))

    async def get_credentials(self, email: str) -> UserCredentials | None:
        return await self._run(partial(get_credentials, email=email))

    async def ensure_admin(self, email: str, password_hash: str) -> User:
        return await self._write_retrying_a_lost_race(partial(ensure_admin, email=email, password_hash=password_hash))

    async def list_users(self) -> list[User]:
        return await self._run(list_users)

    async def count_users(self) -> int:
        return await self._run(count_users)

    async def create_task(self, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None) -> Task:
        return await self._write_retrying_a_lost_race(
            partial(create_task, owner_id=owner_id, data=data, idempotency=idempotency)
        )

    async def get_task(self, task_id: int, owner_id: int | None) -> Task:
        return await self._run(partial(get_task, task_id=task_id, owner_id=owner_id))

    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task:
        work = partial(update_task, task_id=task_id, owner_id=owner_id, changes=changes, precondition=precondition)
        try:
            return await self._run(work, True)
        except StaleDataError as error:  # the conditional UPDATE matched no row: someone wrote first
            raise PreconditionFailed(task_id) from error

    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
        work = partial(delete_task, task_id=task_id, owner_id=owner_id, precondition=precondition)
        try:
            await self._run(work, True)
        except StaleDataError as error:
            raise PreconditionFailed(task_id) from error

    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        return await self._run(partial(list_tasks, owner_id=owner_id, listing=listing))

    async def delete_all_tasks(self) -> int:
        return await self._run(delete_all_tasks, True)
