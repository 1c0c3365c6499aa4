"""The storage interface every backend implements, and the errors it raises.

Routes talk only to `Storage`; `memory_store.MemoryStore` and `sql_store.SqlStore` implement
it, so switching backends is one setting and the tests run the same suite on each.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, Header, Request
from pydantic import BaseModel, StringConstraints, WithJsonSchema

from models import SortField, Task, TaskCreate, TaskQuery, User

MAX_ID = 2**31 - 1  # the largest id every backend's integer column can hold


def utc_now() -> datetime:
    """Timestamps are always aware UTC, whichever backend stores them."""
    return datetime.now(UTC)


def new_token_key() -> str:
    """A fresh per-account key: set with every new password, carried by every token."""
    return secrets.token_urlsafe(16)


class StorageError(Exception):
    """Base class: each subclass maps to one HTTP problem in `errors.py`."""


class TaskNotFound(StorageError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"Task {task_id} not found")


class PreconditionFailed(StorageError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"Task {task_id} has changed since the ETag you sent (If-Match)")


class EmailTaken(StorageError):
    def __init__(self) -> None:
        super().__init__("A user with this email already exists")


class IdempotencyKeyReused(StorageError):
    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request body")


class AccountGone(StorageError):
    """The caller's account was deleted while the request ran: answered like a revoked token."""

    def __init__(self) -> None:
        super().__init__("The access token is invalid or has expired")


class StorageUnavailable(StorageError):
    def __init__(self) -> None:
        super().__init__("The storage is temporarily unavailable; retry shortly")


class InvalidCursor(ValueError):
    """A listing cursor that is malformed, tampered with, or issued for another sort: a 422."""


@dataclass(frozen=True)
class UserCredentials:
    """A user with the password hash and token key: only the login path ever sees them."""

    user: User
    password_hash: str
    token_key: str


@dataclass(frozen=True)
class Precondition:
    """The `If-Match` header, parsed: `*` matches any version, else one of `versions`."""

    any_version: bool = False
    versions: frozenset[int] = frozenset()

    def allows(self, version: int) -> bool:
        return self.any_version or version in self.versions


# 1-255 printable ASCII characters, no surrounding spaces (HTTP would strip them anyway).
IDEMPOTENCY_KEY = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"
IdempotencyKey = Annotated[
    Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY)] | None,
    Header(description="1-255 printable ASCII characters; a retry with the same key and body returns the original"),
    WithJsonSchema({"type": "string", "pattern": IDEMPOTENCY_KEY}),  # left out when not sent, never null
]


@dataclass(frozen=True)
class IdempotencyRequest:
    """An `Idempotency-Key` and the fingerprint of the validated body it came with."""

    key: str
    fingerprint: str
    not_before: datetime  # keys older than this are expired and may be reused

    @classmethod
    def for_body(cls, key: str, body: BaseModel, ttl_hours: int) -> "IdempotencyRequest":
        """Fingerprint the body after validation, so `" x "` and `"x"` count as the same request."""
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        return cls(key, fingerprint, datetime.now(UTC) - timedelta(hours=ttl_hours))


@dataclass(frozen=True)
class TaskListing:
    """A listing request as storage sees it: filters, sort, and where to start."""

    query: TaskQuery
    after: "SortPosition | None" = None  # from a cursor; None means use query.offset


SortValue = int | str | date | datetime | None


@dataclass(frozen=True)
class SortPosition:
    """The sort key of the last task on a page; the next page starts strictly after it."""

    value: SortValue
    task_id: int


def sort_value(task: Task, sort_by: SortField) -> SortValue:
    """The value a task is ordered by (titles case-insensitively), shared by every backend."""
    if sort_by is SortField.title:
        return task.title.lower()
    value: SortValue = getattr(task, sort_by.value)
    return value


StorageKind = Literal["memory", "sqlite", "postgresql"]


class Storage(Protocol):
    """What the API needs from a backend. Ownership: `owner_id=None` means an admin (all tasks)."""

    kind: StorageKind

    async def ping(self) -> None: ...
    async def close(self) -> None: ...

    async def create_user(self, email: str, password_hash: str, is_admin: bool = False) -> User: ...
    async def get_user(self, user_id: int, token_key: str) -> User | None:
        """The user with this id, if their token key is still `token_key` (None: revoked or gone)."""
        ...

    async def get_credentials(self, email: str) -> UserCredentials | None: ...
    async def ensure_admin(self, email: str, password_hash: str) -> User:
        """Create or promote this admin with a new password (and so a new token key)."""
        ...

    async def list_users(self) -> list[User]: ...
    async def count_users(self) -> int: ...

    async def create_task(
        self, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None
    ) -> Task: ...
    async def get_task(self, task_id: int, owner_id: int | None) -> Task: ...
    async def update_task(
        self, task_id: int, owner_id: int | None, changes: dict[str, Any], precondition: Precondition | None
    ) -> Task: ...
    async def delete_task(self, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None: ...
    async def list_tasks(self, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
        """One page plus the match count; up to `limit + 1` tasks, the extra one only signals a next page."""
        ...

    async def delete_all_tasks(self) -> int: ...


async def get_db(request: Request) -> Storage:
    """The storage the app opened at startup; tests override this with a throwaway one."""
    storage: Storage = request.app.state.storage
    return storage


Db = Annotated[Storage, Depends(get_db)]
