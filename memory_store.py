"""The default backend: plain dicts in this process, gone when it stops.

It needs no set-up, which is why `uvicorn main:app --reload` works on a fresh machine.
Methods never await, so each runs whole on the event loop; the lock still makes every
check-then-write atomic if a store is ever shared with threads (tests do).
"""

import threading
from collections.abc import Iterable
from datetime import datetime
from itertools import count
from typing import Any

from models import SortOrder, Task, TaskCreate, TaskQuery, User
from storage import (
    EmailTaken,
    IdempotencyKeyReused,
    IdempotencyRequest,
    Precondition,
    PreconditionFailed,
    SortPosition,
    StorageKind,
    TaskListing,
    TaskNotFound,
    UserCredentials,
    sort_value,
    utc_now,
)


def matches(task: Task, query: TaskQuery) -> bool:
    """Whether a task passes every filter of a listing query."""
    if query.status and task.status not in query.status:
        return False
    if query.priority is not None and task.priority != query.priority:
        return False
    if query.tag and not set(query.tag).issubset(task.tags):
        return False
    if query.q is not None:
        needle = query.q.lower()
        if needle not in task.title.lower() and needle not in (task.description or "").lower():
            return False
    if query.due_before is not None and (task.due_date is None or task.due_date > query.due_before):
        return False
    return query.due_after is None or (task.due_date is not None and task.due_date >= query.due_after)


def in_listing_order(tasks: Iterable[Task], query: TaskQuery) -> list[Task]:
    """Sort by the requested field with `id` breaking ties; tasks lacking the value go last."""
    dated: list[Task] = []
    undated: list[Task] = []
    for task in tasks:
        (undated if sort_value(task, query.sort_by) is None else dated).append(task)
    descending = query.order is SortOrder.desc
    dated.sort(key=lambda task: (sort_value(task, query.sort_by), task.id), reverse=descending)
    undated.sort(key=lambda task: task.id, reverse=descending)
    return dated + undated


def comes_after(task: Task, position: SortPosition, query: TaskQuery) -> bool:
    """Whether `task` sorts strictly after a cursor position (the keyset predicate)."""
    value = sort_value(task, query.sort_by)
    descending = query.order is SortOrder.desc
    if position.value is None:  # the cursor is already among the tasks without a value
        return value is None and (task.id < position.task_id if descending else task.id > position.task_id)
    if value is None:
        return True
    key, cursor_key = (value, task.id), (position.value, position.task_id)
    return key < cursor_key if descending else key > cursor_key


class MemoryStore:
    kind: StorageKind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._user_ids = count(1)
        self._task_ids = count(1)
        self._users: dict[int, UserCredentials] = {}
        self._user_id_by_email: dict[str, int] = {}
        self._tasks: dict[int, Task] = {}
        self._idempotent_creations: dict[tuple[int, str], tuple[str, datetime, Task]] = {}

    async def ping(self) -> None:
        """Always ready: there is nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    async def create_user(self, email: str, password_hash: str, is_admin: bool = False) -> User:
        with self._lock:
            if email in self._user_id_by_email:
                raise EmailTaken()
            user = User(id=next(self._user_ids), email=email, is_admin=is_admin, created_at=utc_now())
            self._users[user.id] = UserCredentials(user, password_hash)
            self._user_id_by_email[email] = user.id
            return user

    async def get_user(self, user_id: int) -> User | None:
        credentials = self._users.get(user_id)
        return credentials.user if credentials else None

    async def get_credentials(self, email: str) -> UserCredentials | None:
        user_id = self._user_id_by_email.get(email)
        return self._users[user_id] if user_id is not None else None

    async def ensure_admin(self, email: str, password_hash: str) -> User:
        with self._lock:
            user_id = self._user_id_by_email.get(email)
            if user_id is None:
                user = User(id=next(self._user_ids), email=email, is_admin=True, created_at=utc_now())
                self._user_id_by_email[email] = user.id
            else:
                user = self._users[user_id].user.model_copy(update={"is_admin": True})
            self._users[user.id] = UserCredentials(user, password_hash)
            return user

    async def list_users(self) -> list[User]:
        return [credentials.user for credentials in self._users.values()]

    async def count_users(self) -> int:
        return len(self._users)

    async def create_task(self, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None) -> Task:
        with self._lock:
            if idempotency is not None:
                earlier = self._idempotent_creations.get((owner_id, idempotency.key))
                if earlier is not None and earlier[1] >= idempotency.not_before:
                    fingerprint, _, task = earlier
                    if fingerprint != idempotency.fingerprint:
                        raise IdempotencyKeyReused()
                    return task
            now = utc_now()
            task = Task(id=next(self._task_ids), owner_id=owner_id, created_at=now, updated_at=now, **data.model_dump())
            self._tasks[task.id] = task
            if idempotency is not None:
                self._idempotent_creations[(owner_id, idempotency.key)] = (idempotency.fingerprint, now, task)
            return task

    def _find(self, task_id: int, owner_id: int | None) -> Task:
        task = self._tasks.get(task_id)
        if task is None or (owner_id is not None and task.owner_id != owner_id):
            raise TaskNotFound(task_id)
        return task

    def _check(self, task: Task, precondition: Precondition | None) -> None:
        if precondition is not None and not precondition.allows(task.version):
            raise PreconditionFailed(task.id)

    async def get_task(self, task_id: int, owner_id: int | None) -> Task:
        return self._find(task_id, owner_id)

    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task:
        with self._lock:
            task = self._find(task_id, owner_id)
            self._check(task, precondition)
            updated = task.model_copy(update={**changes, "updated_at": utc_now(), "version": task.version + 1})
            self._tasks[task_id] = updated
            return updated

    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
        with self._lock:
            self._check(self._find(task_id, owner_id), precondition)
            del self._tasks[task_id]

    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        query = listing.query
        found = [
            task
            for task in self._tasks.values()
            if (owner_id is None or task.owner_id == owner_id) and matches(task, query)
        ]
        ordered = in_listing_order(found, query)
        if listing.after is not None:
            start = listing.after
            ordered = [task for task in ordered if comes_after(task, start, query)]
        else:
            ordered = ordered[query.offset or 0 :]
        return ordered[: query.limit + 1], len(found)

    async def delete_all_tasks(self) -> int:
        with self._lock:
            deleted = len(self._tasks)
            self._tasks.clear()
            return deleted
