"""The default backend: the API's own `Task` models in plain dicts, gone when the process stops.

It needs no set-up, which is why `uvicorn main:app --reload` works on a fresh machine.
A listing is filter, sort and slice in plain Python, and a lock makes every check-then-write
atomic even when threads share a store (tests do).
"""

import threading
from bisect import bisect_left
from datetime import datetime
from itertools import count
from operator import attrgetter
from typing import Any

from models import SortField, SortOrder, Task, TaskCreate, TaskQuery, User
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
    new_token_key,
    sort_value,
    utc_now,
)


def matching(tasks: list[Task], owner_id: int | None, query: TaskQuery) -> list[Task]:
    """The tasks `owner_id` may list (None: everyone's) that pass the query's filters.

    One pass per filter that is set, each over what the earlier ones kept."""
    if owner_id is not None:
        tasks = [task for task in tasks if task.owner_id == owner_id]
    if query.status:
        tasks = [task for task in tasks if task.status in query.status]
    if query.priority is not None:
        tasks = [task for task in tasks if task.priority == query.priority]
    if query.tag:
        wanted = set(query.tag)
        tasks = [task for task in tasks if wanted.issubset(task.tags)]
    if query.q is not None:
        needle = query.q.lower()
        tasks = [task for task in tasks if needle in task.title.lower() or needle in (task.description or "").lower()]
    if query.due_before is not None:
        tasks = [task for task in tasks if task.due_date is not None and task.due_date <= query.due_before]
    if query.due_after is not None:
        tasks = [task for task in tasks if task.due_date is not None and task.due_date >= query.due_after]
    return tasks


def in_listing_order(tasks: list[Task], query: TaskQuery) -> list[Task]:
    """Sort by `sort_value`, then id; tasks without a due date go last in both orders.

    Tasks come in id order (the dict's insertion order) and sorting is stable, so id already
    breaks ties; a descending listing is the ascending one reversed, ties included."""
    dated, undated = tasks, []
    if query.sort_by is SortField.due_date:  # the only sort field that can be missing
        dated = [task for task in tasks if task.due_date is not None]
        undated = [task for task in tasks if task.due_date is None]
    # attrgetter reads what sort_value returns without a Python call per task; titles need one.
    by_title = query.sort_by is SortField.title
    ordered = sorted(dated, key=(lambda task: task.title.lower()) if by_title else attrgetter(query.sort_by.value))
    if query.order is SortOrder.desc:
        return ordered[::-1] + undated[::-1]
    return ordered + undated


def comes_after(task: Task, position: SortPosition, query: TaskQuery) -> bool:
    """Whether `task` sorts strictly after a cursor position (the keyset predicate)."""
    value = sort_value(task, query.sort_by)
    if (value is None) != (position.value is None):  # only one has a value: those without come last
        return value is None
    # Both have a value, or neither: then the Nones compare equal and the ids decide.
    key, cursor_key = (value, task.id), (position.value, position.task_id)
    return key < cursor_key if query.order is SortOrder.desc else key > cursor_key


def page_start(ordered: list[Task], query: TaskQuery, after: SortPosition | None) -> int:
    """Where a page starts in the sorted matches: at the offset, or just past the cursor."""
    if after is None:
        return query.offset or 0
    # Along the sorted tasks comes_after is False, then True: a bisect finds the first True.
    return bisect_left(ordered, True, key=lambda task: comes_after(task, after, query))


class MemoryStore:
    kind: StorageKind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._user_ids = count(1)
        self._task_ids = count(1)
        self._users: dict[int, UserCredentials] = {}
        self._user_id_by_email: dict[str, int] = {}
        self._tasks: dict[int, Task] = {}  # in id order: ids only grow, an update keeps its place
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
            self._users[user.id] = UserCredentials(user, password_hash, new_token_key())
            self._user_id_by_email[email] = user.id
            return user

    async def get_user(self, user_id: int, token_key: str) -> User | None:
        credentials = self._users.get(user_id)
        return credentials.user if credentials and credentials.token_key == token_key else None

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
            self._users[user.id] = UserCredentials(user, password_hash, new_token_key())
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

    def _find(self, task_id: int, owner_id: int | None, precondition: Precondition | None = None) -> Task:
        """The task, if `owner_id` may see it (None: anyone's) and it is the version `If-Match` names."""
        task = self._tasks.get(task_id)
        if task is None or (owner_id is not None and task.owner_id != owner_id):
            raise TaskNotFound(task_id)
        if precondition is not None and not precondition.allows(task.version):
            raise PreconditionFailed(task_id)
        return task

    async def get_task(self, task_id: int, owner_id: int | None) -> Task:
        with self._lock:
            return self._find(task_id, owner_id)

    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task:
        with self._lock:
            task = self._find(task_id, owner_id, precondition)
            # The changes were validated by TaskCreate or TaskUpdate, so copying them in is safe.
            update = {**changes, "updated_at": utc_now(), "version": task.version + 1}
            self._tasks[task_id] = task = task.model_copy(update=update)
            return task

    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
        with self._lock:
            self._find(task_id, owner_id, precondition)
            del self._tasks[task_id]

    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        query = listing.query
        with self._lock:
            ordered = in_listing_order(matching(list(self._tasks.values()), owner_id, query), query)
            start = page_start(ordered, query, listing.after)
            return ordered[start : start + query.limit + 1], len(ordered)

    async def delete_all_tasks(self) -> int:
        with self._lock:
            deleted = len(self._tasks)
            self._tasks.clear()
            return deleted
