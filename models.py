"""Pydantic models: what the API accepts and what it returns.

A task's fields are declared once, on `TaskBase`; the body of POST and PUT (`TaskCreate`), of
PATCH (`TaskUpdate`) and the task the API returns (`Task`) all build on it, and both storage
backends follow these fields by name. Input models refuse unknown fields; the rules behind
each field type live in `field_types.py`.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from field_types import (
    NO_NUL,
    Description,
    DueDate,
    Email,
    Tag,
    Tags,
    Title,
    every_field_optional,
    integral_float,
    not_sent,
)

CURSOR_MAX = 4096  # a title-sorted cursor carries a JSON-escaped title: up to ~3.4 kB
MAX_OFFSET = 2**31 - 1  # beyond this no backend has rows; SQL drivers overflow near 2**63
MAX_LISTED_ERRORS = 50  # a 422 lists at most this many issues (`detail` gives the count)


class TaskStatus(StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


# --- tasks -------------------------------------------------------------------


class TaskBase(BaseModel):
    """The fields a client sets. A new field goes here (and in db_models.py, with a migration).
    On PATCH, `null` clears a field whose type allows None and is a 422 for the others."""

    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.pending
    priority: Annotated[int, Field(strict=True, ge=1, le=5), BeforeValidator(integral_float)] = 1
    due_date: DueDate | None = None
    tags: Tags = []


class TaskCreate(TaskBase):
    """Body of POST /tasks and PUT /tasks/{id} (a PUT is a full replace: omitted = default)."""

    model_config = ConfigDict(
        extra="forbid",  # unknown or server-owned fields (`id`, `owner_id`) are a 422, not dropped
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
        },
    )


class TaskUpdate(every_field_optional(TaskBase)):  # type: ignore[misc]  # a base built from TaskBase
    """Body of PATCH /tasks/{id}: only the fields sent change."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "examples": [{"status": "completed"}]})

    @model_validator(mode="after")
    def _require_a_field(self) -> "TaskUpdate":
        if not self.model_fields_set:
            raise ValueError("Send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client actually sent, ready for storage."""
        changes: dict[str, Any] = self.model_dump(exclude_unset=True)
        return changes


class Task(TaskBase):
    """A task as the API returns it. `version` feeds the ETag and never leaves the server."""

    id: int
    owner_id: int
    created_at: datetime
    updated_at: datetime
    version: SkipJsonSchema[int] = Field(default=1, exclude=True)

    # Every field is in every answer, so the schema lists them all as required.
    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)


class TaskPage(BaseModel):
    items: list[Task]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


class SortField(StrEnum):
    created_at = "created_at"
    updated_at = "updated_at"
    priority = "priority"
    title = "title"  # type: ignore[assignment]  # the member shadows str.title, as intended
    due_date = "due_date"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class TaskQuery(BaseModel):
    """Query parameters of GET /tasks; invalid values are a 422 like any other input."""

    # Optional parameters are simply left out: a query string cannot carry a null.
    status: list[TaskStatus] = []
    priority: Annotated[int, Field(ge=1, le=5)] | None = not_sent()
    tag: list[Tag] = []
    q: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)] | None = not_sent()
    due_before: DueDate | None = not_sent()
    due_after: DueDate | None = not_sent()
    sort_by: SortField = SortField.created_at
    order: SortOrder = SortOrder.desc
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] | None = not_sent()
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=CURSOR_MAX)] | None = not_sent(
        "The `next_cursor` of a previous page with the same sort; not with `offset`"
    )

    @field_validator("cursor")
    @classmethod
    def _offset_or_cursor(cls, cursor: str | None, info: ValidationInfo) -> str | None:
        if cursor is not None and info.data.get("offset") is not None:
            raise PydanticCustomError("cursor_with_offset", "Use either offset or cursor, not both")
        return cursor


# --- users and tokens --------------------------------------------------------


class UserCreate(BaseModel):
    email: Email
    password: Annotated[str, StringConstraints(strict=True, min_length=8, max_length=128)]

    model_config = ConfigDict(
        extra="forbid",  # `is_admin` in a register body is a 422
        json_schema_extra={"examples": [{"email": "learner@example.com", "password": "correct-horse-battery"}]},
    )


class LoginForm(BaseModel):
    """The OAuth2 password form of POST /auth/token, as Swagger's Authorize sends it.

    FastAPI's OAuth2PasswordRequestForm with an exact schema: a form field sent empty counts
    as missing, so both credentials need a character (wrong ones are a 401, not a 422).
    """

    grant_type: Literal["password"] | None = not_sent()
    username: Annotated[
        str, StringConstraints(min_length=1, max_length=320, pattern=NO_NUL), Field(description="Your email")
    ]
    password: Annotated[
        str, StringConstraints(min_length=1, max_length=128), Field(json_schema_extra={"format": "password"})
    ]
    scope: str = ""
    client_id: str | None = not_sent()
    client_secret: str | None = not_sent()


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


# --- service and errors ------------------------------------------------------


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
    errors: Annotated[list[ValidationIssue], Field(max_length=MAX_LISTED_ERRORS)] | None = None
