"""The field types behind the models: each input rule of the contract, written once.

`models.py` declares the models with these types; this module holds how each rule is checked
and how the OpenAPI schema states it, so that a schema-driven client finds exactly the rules
the validators apply.
"""

import re
from datetime import date
from types import NoneType
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

MAX_TAGS = 10
TITLE_MAX = 200
TAG_MAX = 30
DESCRIPTION_MAX = 2000
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

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


def _date_string_only(value: object) -> object:
    """Accept only `YYYY-MM-DD` strings (or dates): lax Pydantic would take "0" as 1970-01-01
    and "2026-12-01T00:00:00" as a date, which the schema's `format: date` does not allow."""
    if value is None or isinstance(value, date) or (isinstance(value, str) and ISO_DATE.fullmatch(value)):
        return value
    raise PydanticCustomError("date_parsing", "Input should be a date string in YYYY-MM-DD format")


def integral_float(value: object) -> object:
    """JSON Schema counts 3.0 as an integer, so the API does too (with `strict=True`, not "3" or true).
    Put it after the field's constraints: `Annotated[int, Field(strict=True, ge=1), BeforeValidator(...)]`."""
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


def not_sent(description: str | None = None) -> Any:
    """Default of a field that may be left out but never sent as `null` (a query parameter, or
    a PATCH field that cannot be cleared). Typed `X | None` so that an invalid value gets one
    error; `_omit_null` keeps the `None` out of the schema."""
    return Field(default=None, description=description, json_schema_extra=_omit_null)


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("This field may not be null")
    return value


def _optional(field: FieldInfo) -> tuple[Any, FieldInfo]:
    """One field of a PATCH body: left out by default; `null` only where the type allows None."""
    if NoneType in get_args(field.annotation):  # `X | None`: null clears it
        return field.annotation, FieldInfo.merge_field_infos(field, default=None)
    never_null: Any = Annotated[field.rebuild_annotation() | None, BeforeValidator(_refuse_null)]
    return never_null, not_sent(field.description)


def every_field_optional(model: type[BaseModel]) -> type[BaseModel]:
    """`model`'s fields, each optional and checked by the same rules: the base of a PATCH body.
    Built from the model, so a field added there is accepted by PATCH with no other change."""
    fields = {name: _optional(field) for name, field in model.model_fields.items()}
    optional: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"Optional{model.__name__}", __config__=ConfigDict(extra="forbid"), **fields
    )
    return optional


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
