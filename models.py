"""Pydantic models: what the API accepts and what it returns.

Input models forbid unknown fields and are strict about JSON types (no "3" for 3), so
every input rule of the contract lives here and every backend sees clean data.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

MAX_TAGS = 10


class TaskStatus(StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class SortField(StrEnum):
    created_at = "created_at"
    updated_at = "updated_at"
    priority = "priority"
    title = "title"
    due_date = "due_date"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


def _date_string_only(value: object) -> object:
    """Accept only `YYYY-MM-DD` strings (or dates): lax Pydantic would take 0 as 1970-01-01."""
    if value is None or isinstance(value, str | date):
        return value
    raise ValueError("Input should be a date string in YYYY-MM-DD format")


def _unique_tags(tags: list[str]) -> list[str]:
    """Drop repeated tags, keeping first-occurrence order, then enforce the count limit."""
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"At most {MAX_TAGS} distinct tags are allowed")
    return unique


Title = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S"),
]
Description = Annotated[str, StringConstraints(strict=True, max_length=2000)]
Priority = Annotated[int, Field(strict=True, ge=1, le=5)]
DueDate = Annotated[date, BeforeValidator(_date_string_only)]
Tag = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, to_lower=True, min_length=1, max_length=30, pattern=r"\S"),
]
Tags = Annotated[list[Tag], AfterValidator(_unique_tags)]


class InputModel(BaseModel):
    """Base for request bodies: unknown or server-owned fields are a 422, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class TaskCreate(InputModel):
    """Body of POST /tasks and PUT /tasks/{id} (a PUT is a full replace: omitted = default)."""

    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.pending
    priority: Priority = 1
    due_date: DueDate | None = None
    tags: Tags = []

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Write API tutorial",
                    "description": "Cover validation and auth",
                    "status": "pending",
                    "priority": 3,
                    "due_date": "2026-12-01",
                    "tags": ["docs", "writing"],
                }
            ]
        }
    )


NOT_NULLABLE_ON_PATCH = ("title", "status", "priority", "tags")


class TaskPatch(InputModel):
    """Body of PATCH /tasks/{id}: only the fields sent change; null clears the optional ones."""

    # SkipJsonSchema hides the `None` from the schema: omitted is fine, an explicit null is not.
    title: Title | SkipJsonSchema[None] = None
    description: Description | None = None
    status: TaskStatus | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    due_date: DueDate | None = None
    tags: Tags | SkipJsonSchema[None] = None

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "examples": [{"status": "completed"}]})

    @field_validator(*NOT_NULLABLE_ON_PATCH, mode="before")
    @classmethod
    def _reject_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("This field may not be null")
        return value

    @model_validator(mode="after")
    def _require_a_field(self) -> "TaskPatch":
        if not self.model_fields_set:
            raise ValueError("Send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client actually sent, ready for storage."""
        return self.model_dump(exclude_unset=True)


class Task(BaseModel):
    """A task as the API returns it. `version` feeds the ETag and never leaves the server."""

    id: int
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    due_date: date | None
    tags: list[str]
    owner_id: int
    created_at: datetime
    updated_at: datetime
    version: SkipJsonSchema[int] = Field(default=1, exclude=True)

    model_config = ConfigDict(from_attributes=True)


class TaskPage(BaseModel):
    items: list[Task]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


class TaskQuery(BaseModel):
    """Query parameters of GET /tasks; invalid values are a 422 like any other input."""

    status: list[TaskStatus] = []
    priority: Annotated[int, Field(ge=1, le=5)] | None = None
    tag: list[Tag] = []
    q: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    due_before: date | None = None
    due_after: date | None = None
    sort_by: SortField = SortField.created_at
    order: SortOrder = SortOrder.desc
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0)] | None = None
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None

    @model_validator(mode="after")
    def _offset_or_cursor(self) -> "TaskQuery":
        if self.offset is not None and self.cursor is not None:
            raise ValueError("Use either offset or cursor, not both")
        return self


class UserCreate(InputModel):
    email: Annotated[EmailStr, AfterValidator(str.lower)]
    password: Annotated[str, StringConstraints(strict=True, min_length=8, max_length=128)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "learner@example.com", "password": "correct-horse-battery"}]}
    )


class User(BaseModel):
    id: int
    email: str
    is_admin: bool
    created_at: datetime

    model_config = ConfigDict(from_attributes=True)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class Deleted(BaseModel):
    deleted: int


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str = "/docs"
    redoc: str = "/redoc"
    health: str = "/health"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    storage: Literal["memory", "sqlite", "postgresql"]


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every 4xx/5xx answer."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: list[ValidationIssue] | None = None
