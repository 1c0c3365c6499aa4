"""Entity tags and the conditional request headers that use them (RFC 9110 §13).

A task's ETag is its id and version; storage bumps the version on every write, so the
tag changes whenever the task does and `If-Match` can be checked inside the write itself.
"""

import re

from models import Task
from storage import Precondition

ENTITY_TAG = re.compile(r'"(\d+)-(\d+)"')


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
