"""Pure ASGI middleware: request ids, timing, security headers, access log, body limit, CORS.

Written against raw ASGI rather than Starlette's `BaseHTTPMiddleware`, which would cost
most of the API's throughput on this stack; each class wraps `send`/`receive` only.
"""

import json
import logging
import os
import re
import time
from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from errors import REQUEST_ID_PATTERN, RequestContext, current_request, problem_response

access_log = logging.getLogger("tasks.access")
error_log = logging.getLogger("tasks.error")

SANE_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def log_request(scope: Scope, request_id: str, status: int, started: float) -> None:
    """The access log's JSON line for one request (built only when someone reads it)."""
    if access_log.isEnabledFor(logging.INFO):
        line = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user_id": scope.setdefault("state", {}).get("user_id"),
        }
        access_log.info(json.dumps(line))


class RequestContextMiddleware:
    """The outermost layer: gives every request an id, headers, one log line, and a safe 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = Headers(scope=scope).get("x-request-id", "")
        request_id = offered if SANE_REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
        current_request.set(RequestContext(request_id, scope["path"]))
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", request_id)
                headers.append("Server-Timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}")
                for name, value in SECURITY_HEADERS:
                    message["headers"].append((name, value))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_log.exception("unhandled error in request %s", request_id, extra={"request_id": request_id})
            if response_started:
                raise
            await problem_response(500, "An unexpected error occurred; it has been logged")(
                scope, receive, send_with_headers
            )
        finally:
            log_request(scope, request_id, status, started)


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {max_bytes} bytes")


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with a 413, counting while they stream in.

    A declared Content-Length is refused before reading; a chunked body is cut off as soon
    as it crosses the limit, so a client can never make the server buffer more than that.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(413, str(BodyTooLarge(self.max_bytes).detail))(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # FastAPI re-raises HTTPException as is
            return message

        await self.app(scope, counting_receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with a refused preflight answered as a problem.

    With `*` among the origins, credentials are switched off: Starlette would otherwise echo
    every caller's origin together with `Allow-Credentials: true`, opening the API to any site.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        expose_headers: Collection[str] = (),
    ) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials and "*" not in allow_origins,
            expose_headers=expose_headers,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        return problem_response(response.status_code, f"CORS preflight refused: {bytes(response.body).decode()}")
