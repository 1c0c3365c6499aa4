"""Opaque keyset cursors and the `Link` header for task listings.

A cursor holds the sort key of the last task on a page, signed with HMAC so that a
client can neither forge a position nor reuse a cursor under a different sort.
"""

import base64
import hashlib
import hmac
import json
from datetime import date, datetime
from urllib.parse import urlencode

from errors import header_doc
from models import SortField, Task, TaskQuery
from storage import InvalidCursor, SortPosition, SortValue, sort_value

# The headers every page carries, documented for schema-driven tests.
PAGE_HEADERS = {
    "X-Total-Count": header_doc("Tasks matching the filters, on every page", r"^[0-9]+$"),
    "Link": header_doc('RFC 8288 links: rel="first", and rel="next" unless this is the last page', r'rel="first"'),
}


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def encode_cursor(last: Task, query: TaskQuery, secret: str) -> str:
    """The cursor that continues a listing after `last`, bound to the query's sort."""
    value = sort_value(last, query.sort_by)
    plain = value.isoformat() if isinstance(value, date | datetime) else value
    payload = json.dumps([query.sort_by.value, query.order.value, plain, last.id], separators=(",", ":")).encode()
    return f"{_b64encode(payload)}.{_b64encode(_signature(payload, secret))}"


def decode_cursor(cursor: str, query: TaskQuery, secret: str) -> SortPosition:
    """Check the signature and the sort, then turn the cursor back into a position."""
    try:
        encoded_payload, encoded_signature = cursor.split(".")
        payload = _b64decode(encoded_payload)
        signature_ok = hmac.compare_digest(_signature(payload, secret), _b64decode(encoded_signature))
    except ValueError as error:  # wrong shape or not base64 (binascii.Error is a ValueError)
        raise InvalidCursor("The cursor is malformed") from error
    if not signature_ok:
        raise InvalidCursor("The cursor has been tampered with")
    try:
        sort_by, order, value, task_id = json.loads(payload)
    except (ValueError, TypeError) as error:  # signed, but not a shape this version writes
        raise InvalidCursor("The cursor is malformed") from error
    if (sort_by, order) != (query.sort_by.value, query.order.value):
        raise InvalidCursor("The cursor belongs to another sort_by/order; start again without it")
    try:
        return SortPosition(value=_parse_sort_value(query.sort_by, value), task_id=int(task_id))
    except (ValueError, TypeError) as error:
        raise InvalidCursor("The cursor is malformed") from error


def _parse_sort_value(sort_by: SortField, value: SortValue) -> SortValue:
    if value is None or not isinstance(value, str):
        return value
    if sort_by in (SortField.created_at, SortField.updated_at):
        return datetime.fromisoformat(value)
    if sort_by is SortField.due_date:
        return date.fromisoformat(value)
    return value


def link_header(path: str, query: TaskQuery, next_cursor: str | None) -> str:
    """RFC 8288 links to the first page and, when there is one, the next page."""
    params = query.model_dump(mode="json", exclude={"offset", "cursor"}, exclude_defaults=True)
    params["limit"] = query.limit
    links = [f'<{path}?{urlencode(params, doseq=True)}>; rel="first"']
    if next_cursor is not None:
        links.insert(0, f'<{path}?{urlencode({**params, "cursor": next_cursor}, doseq=True)}>; rel="next"')
    return ", ".join(links)
