"""Pydantic models: what the API accepts and what it returns.

Input models forbid unknown fields and are strict about JSON types (no "3" for 3), so
every input rule of the contract lives here and every backend sees clean data.
"""

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

MAX_TAGS = 10
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TITLE_MAX = 200
TAG_MAX = 30
DESCRIPTION_MAX = 2000
CURSOR_MAX = 4096  # a title-sorted cursor carries a JSON-escaped title: up to ~3.4 kB
MAX_OFFSET = 2**31 - 1  # beyond this no backend has rows; SQL drivers overflow near 2**63

# What "surrounding whitespace" means for titles and tags: Unicode White_Space. Spelled out
# because regex engines disagree about `\s` (Python's also matches \x1c-\x1f), and the JSON
# schema patterns below must describe exactly what the validators strip.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_WS_CHARS = r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # the same set
_WS = f"[{_WS_CHARS}]"
_VISIBLE = f"[^\\u0000{_WS_CHARS}]"  # neither whitespace nor NUL
# PostgreSQL text cannot hold NUL, so no backend accepts it (the same answer everywhere).
NO_NUL = "^[^\\u0000]*$"
# "İ".lower() is two characters ("i" + a combining dot); its simple lower-case mapping is "i",
# so lower-casing never changes a tag's length and the length rule can live in the schema.
SIMPLE_LOWER = str.maketrans({"\u0130": "i"})


class TaskStatus(StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class SortField(StrEnum):
    created_at = "created_at"
    updated_at = "updated_at"
    priority = "priority"
    title = "title"  # type: ignore[assignment]  # the member shadows str.title, as intended
    due_date = "due_date"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


def _date_string_only(value: object) -> object:
    """Accept only `YYYY-MM-DD` strings (or dates): lax Pydantic would take "0" as 1970-01-01
    and "2026-12-01T00:00:00" as a date, which the schema's `format: date` does not allow."""
    if value is None or isinstance(value, date) or (isinstance(value, str) and ISO_DATE.fullmatch(value)):
        return value
    raise PydanticCustomError("date_parsing", "Input should be a date string in YYYY-MM-DD format")


def _integral_float(value: object) -> object:
    """JSON Schema counts 3.0 as an integer, so the API does too (but not "3" or true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _stripped_pattern(max_length: int) -> str:
    """The raw strings that are 1..max_length characters (none of them NUL) once stripped."""
    return f"^{_WS}*{_VISIBLE}(?:[^\\u0000]{{0,{max_length - 2}}}{_VISIBLE})?{_WS}*$"


def _stripped(value: str, max_length: int) -> str:
    """Strip surrounding whitespace, then check what is left (the rule `_stripped_pattern` states)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", "Input should be a valid string") from None
    value = value.strip(WHITESPACE)
    if "\x00" in value:
        raise PydanticCustomError("string_pattern_mismatch", "String should not contain NUL characters")
    if not value:
        raise PydanticCustomError("string_too_short", "String should have at least 1 character besides whitespace")
    if len(value) > max_length:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters once stripped",
            {"max_length": max_length},
        )
    return value


def _title(value: str) -> str:
    return _stripped(value, TITLE_MAX)


def _tag(value: str) -> str:
    return _stripped(value, TAG_MAX).translate(SIMPLE_LOWER).lower()


def _unique_tags(tags: list[str]) -> list[str]:
    """Drop repeated tags, keeping first-occurrence order, then enforce the count limit."""
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise PydanticCustomError(
            "too_many_tags", "At most {max_tags} distinct tags are allowed", {"max_tags": MAX_TAGS}
        )
    return unique


Title = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_title),
    WithJsonSchema(
        {"type": "string", "pattern": _stripped_pattern(TITLE_MAX), "description": "1-200 characters once stripped"}
    ),
]
Description = Annotated[str, StringConstraints(strict=True, max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
Priority = Annotated[int, Field(strict=True, ge=1, le=5), BeforeValidator(_integral_float)]
DueDate = Annotated[date, BeforeValidator(_date_string_only)]
# One tag, as a body field or a `tag` filter: stripped, lower-cased, then 1-30 characters.
Tag = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_tag),
    WithJsonSchema(
        {"type": "string", "pattern": _stripped_pattern(TAG_MAX), "description": "1-30 characters once stripped"}
    ),
]
# JSON Schema cannot say "at most 10 once duplicates are removed" (maxItems would refuse
# ["a"] * 11, which the contract accepts), so the limit is stated in words, not as maxItems.
Tags = Annotated[
    list[Tag],
    AfterValidator(_unique_tags),
    Field(description=f"Duplicates (after normalising) are removed; at most {MAX_TAGS} distinct tags remain"),
]


def _omit_null(schema: dict[str, Any]) -> None:
    """Show an optional field as its real type: `null` there only means "not sent"."""
    schema.pop("default", None)
    branches = schema.pop("anyOf", None)
    if isinstance(branches, list):
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


def not_sent() -> Any:
    """Default of a field that may be left out but never sent as `null` (a query parameter, or
    a PATCH field that cannot be cleared). Typed `X | None` so that an invalid value gets one
    error; `_omit_null` keeps the `None` out of the schema."""
    return Field(default=None, json_schema_extra=_omit_null)


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

    # Omitted is fine for every field; an explicit null is refused where it cannot clear anything.
    title: Title | None = not_sent()
    description: Description | None = None
    status: TaskStatus | None = not_sent()
    priority: Priority | None = not_sent()
    due_date: DueDate | None = None
    tags: Tags | None = not_sent()

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
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=CURSOR_MAX)] | None = Field(
        default=None,
        json_schema_extra=_omit_null,
        description="The `next_cursor` of a previous page with the same sort; not with `offset`",
    )

    @field_validator("cursor")
    @classmethod
    def _offset_or_cursor(cls, cursor: str | None, info: ValidationInfo) -> str | None:
        if cursor is not None and info.data.get("offset") is not None:
            raise PydanticCustomError("cursor_with_offset", "Use either offset or cursor, not both")
        return cursor


# An email address in plain ASCII: a dot-atom local part and a dotted host name whose last
# label starts with a letter, within RFC 5321's lengths (local part 64, domain 253, label 63).
# Spelled out rather than EmailStr because email-validator also refuses addresses that
# `format: email` allows (`x@demo.test`, numeric top-level domains), so no schema could say
# what it accepts; this rule is exactly the pattern plus the lengths `format: email` implies.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*$"
_EMAIL = re.compile(EMAIL_PATTERN)


def _email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    if (
        not _EMAIL.fullmatch(value)
        or len(local) > 64
        or len(domain) > 253
        or any(len(label) > 63 for label in domain.split("."))
    ):
        raise PydanticCustomError("value_error", "value is not a valid email address")
    return value.lower()


Email = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "pattern": EMAIL_PATTERN, "maxLength": 318}),
]


class UserCreate(InputModel):
    email: Email
    password: Annotated[str, StringConstraints(strict=True, min_length=8, max_length=128)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "learner@example.com", "password": "correct-horse-battery"}]}
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


# A 422 lists at most this many issues (`detail` gives the count), so its size stays bounded.
MAX_LISTED_ERRORS = 50


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every 4xx/5xx answer."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: Annotated[list[ValidationIssue], Field(max_length=MAX_LISTED_ERRORS)] | None = None
