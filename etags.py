"""Entity tags and the conditional request headers that use them (RFC 9110 §13).

A task's ETag is its id and version; storage bumps the version on every write, so the
tag changes whenever the task does and `If-Match` can be checked inside the write itself.
"""

import re
from typing import Annotated, Any

from fastapi import Header
from pydantic import StringConstraints, WithJsonSchema

from errors import header_doc
from models import Task
from storage import Precondition

ENTITY_TAG = re.compile(r'"(\d+)-(\d+)"')

# RFC 9110 §13.1: an opaque tag is quoted etagc characters; a request's If-Match or
# If-None-Match is `*` or a comma-separated list of (possibly weak) tags; anything else is a 422.
OPAQUE_TAG = r'"[\x21\x23-\x7e]*"'
_ANY_TAG = rf"(?:W/)?{OPAQUE_TAG}"
ENTITY_TAGS = rf"^(?:\*|{_ANY_TAG}(?:[ \t]*,[ \t]*{_ANY_TAG})*)$"


def _tags_header(description: str, *examples: str) -> Any:
    """An optional header of entity tags. The schema shows a string, never `null` (it is simply
    left out), with examples a schema-driven tester cannot draw from the pattern."""
    return Annotated[
        Annotated[str, StringConstraints(pattern=ENTITY_TAGS)] | None,
        Header(description=description),
        WithJsonSchema({"type": "string", "pattern": ENTITY_TAGS, "examples": list(examples)}),
    ]


IfMatch = _tags_header("Apply only if the task still has one of these ETags (else 412)", '"1-1"', "*")
IfNoneMatch = _tags_header("Answer 304 if the task still has one of these ETags", '"1-1"')
# The header every successful single-task answer carries, documented for schema-driven tests.
ETAG = {"ETag": header_doc("Strong validator of this version of the task", rf"^{OPAQUE_TAG}$")}


def etag(task: Task) -> str:
    return f'"{task.id}-{task.version}"'


def precondition(if_match: str | None, task_id: int) -> Precondition | None:
    """Parse `If-Match` for a task: `*`, or a list of strong tags (anything else never matches)."""
    if if_match is None:
        return None
    if if_match.strip() == "*":
        return Precondition(any_version=True)
    versions = {
        int(match[2])
        for candidate in if_match.split(",")
        if (match := ENTITY_TAG.fullmatch(candidate.strip())) and int(match[1]) == task_id
    }
    return Precondition(versions=frozenset(versions))


def not_modified(if_none_match: str | None, current: str) -> bool:
    """Whether `If-None-Match` already names the current representation (weak comparison)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == current for candidate in if_none_match.split(","))
