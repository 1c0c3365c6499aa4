"""RFC 9457 problem details: one builder, the exception handlers, and their OpenAPI entries.

Every 4xx/5xx the API sends is built by `problem_response`, so clients parse one shape
and a schema-driven tester finds every status code documented.
"""

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.routing import Match

from models import MAX_LISTED_ERRORS, Problem, ValidationIssue
from storage import (
    AccountGone,
    EmailTaken,
    IdempotencyKeyReused,
    InvalidCursor,
    PreconditionFailed,
    StorageError,
    StorageUnavailable,
    TaskNotFound,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_PATTERN = r"[A-Za-z0-9._-]{1,128}"  # a client's X-Request-ID is echoed only if it matches
RETRY_AFTER_SECONDS = "5"
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    path: str
    arrived_at: float = field(default_factory=time.monotonic)  # every wait of the request counts from here


# Set by the request middleware for each request, so any layer can build a problem body.
current_request: ContextVar[RequestContext] = ContextVar("current_request")
OUTSIDE_A_REQUEST = RequestContext(request_id="-", path="/")


def seconds_left(timeout: float) -> float:
    """What remains of `timeout` for the current request, counted from its arrival (from now
    outside a request, as at startup): every queue a request waits in shares one budget."""
    context = current_request.get(None)
    started = context.arrived_at if context is not None else time.monotonic()
    return started + timeout - time.monotonic()


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None, errors: list[ValidationIssue] | None = None
) -> JSONResponse:
    context = current_request.get(OUTSIDE_A_REQUEST)
    problem = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=context.path,
        request_id=context.request_id,
        errors=errors[:MAX_LISTED_ERRORS] if errors is not None else None,  # the cap holds for every caller
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def allowed_methods(request: Request) -> str:
    """Every method some route accepts for this path (Starlette's own list names one route only)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in METHOD_ORDER
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


def _printable(text: str) -> str:
    """A lone surrogate from a JSON `\\ud800` escape cannot be encoded; echo it as `?`."""
    return text.encode("utf-8", "replace").decode()


def _unparsable_body(error: HTTPException) -> bool:
    """FastAPI and Starlette answer 400 for a body they cannot parse at all: JSON that is not
    UTF-8 or nested too deep, broken multipart. The contract wants 415 or 422 for such bodies."""
    reason = error.__cause__ or error.__context__
    return error.status_code == 400 and isinstance(reason, ValueError | RecursionError | MultiPartException)


async def _http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if _unparsable_body(error):
        issue = ValidationIssue(loc=["body"], msg=str(error.detail), type="body_unparsable")
        return problem_response(422, "The request body could not be parsed", errors=[issue])
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).description
    return problem_response(error.status_code, detail, headers)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    found = error.errors()
    issues = [
        ValidationIssue(
            loc=[_printable(str(part)) if not isinstance(part, int) else part for part in issue["loc"]],
            msg=_printable(issue["msg"]),
            type=issue["type"],
        )
        for issue in found[:MAX_LISTED_ERRORS]
    ]
    return problem_response(422, _validation_detail(len(found)), errors=issues)


def _validation_detail(count: int) -> str:
    if count > MAX_LISTED_ERRORS:
        return f"The request has {count} validation problems; the first {MAX_LISTED_ERRORS} are listed in errors"
    noun = "problem" if count == 1 else "problems"
    return f"The request has {count} validation {noun}; see errors"


async def _invalid_cursor(_: Request, error: Exception) -> JSONResponse:
    issue = ValidationIssue(loc=["query", "cursor"], msg=str(error), type="invalid_cursor")
    return problem_response(422, str(error), errors=[issue])


STORAGE_ERROR_STATUS: dict[type[StorageError], int] = {
    AccountGone: 401,
    TaskNotFound: 404,
    EmailTaken: 409,
    PreconditionFailed: 412,
    IdempotencyKeyReused: 422,
    StorageUnavailable: 503,
}


async def _storage_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StorageError)
    status = STORAGE_ERROR_STATUS[type(error)]
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    errors = None
    if isinstance(error, IdempotencyKeyReused):  # a 422 like any other: it says which input is at fault
        errors = [ValidationIssue(loc=["header", "Idempotency-Key"], msg=str(error), type="idempotency_key_reused")]
    return problem_response(status, str(error), headers, errors)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through `problem_response` (500s are caught by the request middleware)."""
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    for error_type in STORAGE_ERROR_STATUS:
        app.add_exception_handler(error_type, _storage_error)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for a route; `install_problem_openapi` fills in their content."""
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


def header_doc(description: str, pattern: str) -> dict[str, Any]:
    """An OpenAPI response header that is always sent, in the shape its `pattern` gives."""
    return {"description": description, "required": True, "schema": {"type": "string", "pattern": pattern}}


# Added to every response by middleware.RequestContextMiddleware, errors and 304s included.
EVERY_RESPONSE_HEADERS = {
    "X-Request-ID": header_doc("The client's own id when sane, else a new one", rf"^{REQUEST_ID_PATTERN}$"),
    "Server-Timing": header_doc("Time spent in the app, in milliseconds", r"^app;dur=[0-9]+\.[0-9]+$"),
    "X-Content-Type-Options": header_doc("Always `nosniff`", r"^nosniff$"),
}
RETRY_AFTER = {"Retry-After": header_doc("Seconds to wait before trying again", r"^[0-9]+$")}
PROBLEM_HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": header_doc("How to authenticate", r"^Bearer$")},
    "429": RETRY_AFTER,
    "503": RETRY_AFTER,
}


def install_problem_openapi(app: FastAPI) -> None:
    """Document every error as `application/problem+json` with the `Problem` schema, and the
    headers that responses always carry, so a schema-driven tester checks them too."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem_schema.pop("$defs", {}))
        components["Problem"] = problem_schema
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        problem_content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in schema["paths"].values():
            for operation in path_item.values():
                responses = operation["responses"]
                # Any request can meet these two: the body limit is checked before routing.
                responses.setdefault("413", {"description": HTTPStatus(413).phrase})
                responses.setdefault("500", {"description": "Internal Server Error"})
                for status, response in responses.items():
                    if int(status) >= 400:
                        response["content"] = problem_content
                    headers = response.setdefault("headers", {})
                    headers.update({**EVERY_RESPONSE_HEADERS, **PROBLEM_HEADERS.get(status, {})})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
