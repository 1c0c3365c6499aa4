"""The default backend: plain dicts in this process, gone when it stops.

It needs no set-up, which is why `uvicorn main:app --reload` works on a fresh machine.
Methods never await, so each runs whole on the event loop; the lock still makes every
check-then-write atomic if a store is ever shared with threads (tests do).

Two choices keep it fast at 100k tasks (measured with `bench/run.py`):
- Tasks are stored as small slotted rows, and a `Task` model is built only for the tasks a
  request returns: a Pydantic model per stored task costs ~1.4 kB, a row ~0.1 kB.
- Ids and `created_at` grow together, so a sorted list of ids *is* the default sort order:
  pages are list slices and cursors a binary search. Sorted id lists per (status, priority)
  answer those filters without looking at any task.
"""

import sys
import threading
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain, count
from operator import attrgetter
from typing import Any

from models import SortField, SortOrder, Task, TaskCreate, TaskQuery, TaskStatus, User
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


@dataclass(slots=True)
class Row:
    """One stored task. `__slots__` leaves out the per-instance dict a `Task` model carries."""

    id: int
    owner_id: int
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    due_date: date | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def to_task(self) -> Task:
        return Task.model_validate(self)  # Task reads attributes (from_attributes=True)


def stored(field: str, value: Any) -> Any:
    """A field value as a row keeps it: tags as a tuple of shared strings (most tasks repeat a few)."""
    if field == "tags":
        return tuple(sys.intern(tag) for tag in value)
    return value


def bucket_key(row: Row) -> tuple[TaskStatus, int]:
    return row.status, row.priority


def discard(ids: list[int], task_id: int) -> None:
    """Remove `task_id` from a sorted list of ids."""
    at = bisect_left(ids, task_id)
    if at < len(ids) and ids[at] == task_id:
        del ids[at]


class Index:
    """The ids of one owner's tasks (or everyone's), sorted, in total and per (status, priority)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.buckets: dict[tuple[TaskStatus, int], list[int]] = {}

    def add(self, row: Row) -> None:
        insort(self.ids, row.id)  # new ids are the largest, so this is an append
        insort(self.buckets.setdefault(bucket_key(row), []), row.id)

    def remove(self, row: Row) -> None:
        discard(self.ids, row.id)
        discard(self.buckets[bucket_key(row)], row.id)

    def move(self, row: Row, old_key: tuple[TaskStatus, int]) -> None:
        """Re-file a row whose status or priority may have changed."""
        if bucket_key(row) != old_key:
            discard(self.buckets[old_key], row.id)
            insort(self.buckets.setdefault(bucket_key(row), []), row.id)

    def candidates(self, query: TaskQuery) -> list[int]:
        """Sorted ids passing the status and priority filters (the caller must not change the list)."""
        if not query.status and query.priority is None:
            return self.ids
        runs = [
            ids
            for (status, priority), ids in self.buckets.items()
            if (not query.status or status in query.status) and query.priority in (None, priority)
        ]
        if len(runs) == 1:
            return runs[0]
        # Each run is sorted and they are disjoint: sorted() merges such runs in C, in about linear time.
        return sorted(chain.from_iterable(runs))


def needs_scan(query: TaskQuery) -> bool:
    """Whether a query has filters the index cannot answer, so each candidate must be checked."""
    return bool(query.tag) or query.q is not None or query.due_before is not None or query.due_after is not None


def matches(row: Row, query: TaskQuery) -> bool:
    """Whether a task passes every filter of a listing query."""
    if query.status and row.status not in query.status:
        return False
    if query.priority is not None and row.priority != query.priority:
        return False
    if query.tag and not set(query.tag).issubset(row.tags):
        return False
    if query.q is not None:
        needle = query.q.lower()
        if needle not in row.title.lower() and needle not in (row.description or "").lower():
            return False
    if query.due_before is not None and (row.due_date is None or row.due_date > query.due_before):
        return False
    return query.due_after is None or (row.due_date is not None and row.due_date >= query.due_after)


def in_listing_order(rows: list[Row], query: TaskQuery) -> list[Row]:
    """Sort rows (given in id order) by the requested field with `id` breaking ties; no due date goes last."""
    descending = query.order is SortOrder.desc
    dated, undated = rows, []
    if query.sort_by is SortField.due_date:  # the only sort field that can be missing
        dated = [row for row in rows if row.due_date is not None]
        undated = [row for row in rows if row.due_date is None]
    if query.sort_by is SortField.title:
        ordered = sorted(dated, key=lambda row: (row.title.lower(), row.id), reverse=descending)
    else:  # attrgetter builds the (value, id) key in C, about 2.5x faster than a lambda
        ordered = sorted(dated, key=attrgetter(query.sort_by.value, "id"), reverse=descending)
    return ordered + (undated[::-1] if descending else undated)


def comes_after(row: Row, position: SortPosition, query: TaskQuery) -> bool:
    """Whether `row` sorts strictly after a cursor position (the keyset predicate)."""
    value = sort_value(row, query.sort_by)
    descending = query.order is SortOrder.desc
    if position.value is None:  # the cursor is already among the tasks without a value
        return value is None and (row.id < position.task_id if descending else row.id > position.task_id)
    if value is None:
        return True
    key, cursor_key = (value, row.id), (position.value, position.task_id)
    return key < cursor_key if descending else key > cursor_key


def page_by_id(ids: list[int], query: TaskQuery, after: SortPosition | None) -> list[int]:
    """Up to limit + 1 ids of a created_at-sorted page, by slicing the ascending id list.

    created_at never decreases as ids grow (see `create_task`), so (created_at, id) order is
    id order and "after the cursor" is just "id beyond the cursor's id": a bisect, not a scan.
    """
    size = query.limit + 1
    if query.order is SortOrder.asc:
        start = bisect_right(ids, after.task_id) if after else query.offset or 0
        return ids[start : start + size]
    end = bisect_left(ids, after.task_id) if after else len(ids) - (query.offset or 0)
    return ids[max(end - size, 0) : max(end, 0)][::-1]


def page_by_sorting(rows: list[Row], query: TaskQuery, after: SortPosition | None) -> list[Row]:
    """Up to limit + 1 rows of a page in any other order: sort the matches, then skip to the start."""
    ordered = in_listing_order(rows, query)
    if after is None:
        start = query.offset or 0
    else:  # along the sorted rows comes_after is False then True, so a bisect finds the first True
        start = bisect_left(ordered, True, key=lambda row: comes_after(row, after, query))
    return ordered[start : start + query.limit + 1]


class MemoryStore:
    kind: StorageKind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._user_ids = count(1)
        self._task_ids = count(1)
        self._users: dict[int, UserCredentials] = {}
        self._user_id_by_email: dict[str, int] = {}
        self._rows: dict[int, Row] = {}
        self._everyone = Index()  # what an admin lists
        self._by_owner: dict[int, Index] = {}  # what each user lists: never a scan of others' tasks
        self._last_created = datetime.min.replace(tzinfo=UTC)
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

    def _indexes(self, owner_id: int) -> tuple[Index, Index]:
        return self._everyone, self._by_owner.setdefault(owner_id, Index())

    async def create_task(self, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None) -> Task:
        with self._lock:
            if idempotency is not None:
                earlier = self._idempotent_creations.get((owner_id, idempotency.key))
                if earlier is not None and earlier[1] >= idempotency.not_before:
                    fingerprint, _, task = earlier
                    if fingerprint != idempotency.fingerprint:
                        raise IdempotencyKeyReused()
                    return task
            # Never behind the previous task, even if the clock steps back: `page_by_id` relies on it.
            now = self._last_created = max(utc_now(), self._last_created)
            fields = {name: stored(name, value) for name, value in data.model_dump().items()}
            # created_at and updated_at share one datetime object until the first update.
            row = Row(id=next(self._task_ids), owner_id=owner_id, created_at=now, updated_at=now, **fields)
            self._rows[row.id] = row
            for index in self._indexes(owner_id):
                index.add(row)
            task = row.to_task()
            if idempotency is not None:
                self._idempotent_creations[(owner_id, idempotency.key)] = (idempotency.fingerprint, now, task)
            return task

    def _find(self, task_id: int, owner_id: int | None) -> Row:
        row = self._rows.get(task_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise TaskNotFound(task_id)
        return row

    def _check(self, row: Row, precondition: Precondition | None) -> None:
        if precondition is not None and not precondition.allows(row.version):
            raise PreconditionFailed(row.id)

    async def get_task(self, task_id: int, owner_id: int | None) -> Task:
        with self._lock:
            return self._find(task_id, owner_id).to_task()

    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task:
        with self._lock:
            row = self._find(task_id, owner_id)
            self._check(row, precondition)
            old_key = bucket_key(row)
            for name, value in changes.items():
                setattr(row, name, stored(name, value))
            row.updated_at = utc_now()
            row.version += 1
            for index in self._indexes(row.owner_id):
                index.move(row, old_key)
            return row.to_task()

    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
        with self._lock:
            row = self._find(task_id, owner_id)
            self._check(row, precondition)
            del self._rows[task_id]
            for index in self._indexes(row.owner_id):
                index.remove(row)

    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        query = listing.query
        with self._lock:
            index = self._everyone if owner_id is None else self._by_owner.get(owner_id, Index())
            ids = index.candidates(query)
            if needs_scan(query):
                ids = [task_id for task_id in ids if matches(self._rows[task_id], query)]
            if query.sort_by is SortField.created_at:
                page = [self._rows[task_id] for task_id in page_by_id(ids, query, listing.after)]
            else:
                page = page_by_sorting([self._rows[task_id] for task_id in ids], query, listing.after)
            return [row.to_task() for row in page], len(ids)

    async def delete_all_tasks(self) -> int:
        with self._lock:
            deleted = len(self._rows)
            self._rows.clear()
            self._everyone = Index()
            self._by_owner.clear()
            return deleted
