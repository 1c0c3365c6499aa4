"""The Tasks API: every route, and the wiring that picks a storage backend at startup.

Run it with `uvicorn main:app --reload`. DATABASE_URL chooses the backend (the in-memory
dict store by default); the routes only ever see the `Storage` interface.
"""

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, get_origin

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Form,
    Header,
    HTTPException,
    Path,
    Request,
    Response,
)
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints, ValidationError, WithJsonSchema
from starlette.concurrency import run_in_threadpool

from auth import (
    CurrentUser,
    authenticate,
    create_access_token,
    hash_password,
    owner_scope,
    require_admin,
    unauthorized,
    verify_password,
)
from database import create_db_engine, schema_is_current, upgrade_to_head
from demo_data import load_demo_data
from docs import mount_docs
from errors import header_doc, install_problem_handlers, install_problem_openapi, problems
from etags import etag, not_modified, precondition
from memory_store import MemoryStore
from middleware import (
    BodySizeLimitMiddleware,
    ProblemCORSMiddleware,
    RequestContextMiddleware,
)
from models import (
    Deleted,
    Health,
    LoginForm,
    Readiness,
    ServiceInfo,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskQuery,
    Token,
    User,
    UserCreate,
)
from pagination import decode_cursor, encode_cursor, link_header
from rate_limit import RateLimits
from settings import AppSettings, Settings
from sql_store import SqlStore
from storage import MAX_ID, Db, EmailTaken, IdempotencyRequest, Storage, TaskListing

VERSION = "1.0.0"

# RFC 9110 §13.1: an opaque tag is quoted etagc characters; a request's If-Match or
# If-None-Match is `*` or a comma-separated list of (possibly weak) tags; anything else is a 422.
OPAQUE_TAG = r'"[\x21\x23-\x7e]*"'
ENTITY_TAG = rf"(?:W/)?{OPAQUE_TAG}"
ENTITY_TAGS = rf"^(?:\*|{ENTITY_TAG}(?:[ \t]*,[ \t]*{ENTITY_TAG})*)$"
# 1-255 printable ASCII characters, no surrounding spaces (HTTP would strip them anyway).
IDEMPOTENCY_KEY = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"


def header_schema(pattern: str, *examples: str) -> WithJsonSchema:
    """An optional header as the schema shows it: a string, never `null` (it is simply left out).
    The examples also give schema-driven testers valid values they cannot draw from the pattern."""
    return WithJsonSchema({"type": "string", "pattern": pattern, **({"examples": list(examples)} if examples else {})})


TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]
IfMatch = Annotated[
    Annotated[str, StringConstraints(pattern=ENTITY_TAGS)] | None,
    Header(description="Apply only if the task still has one of these ETags (else 412)"),
    header_schema(ENTITY_TAGS, '"1-1"', "*"),
]
IfNoneMatch = Annotated[
    Annotated[str, StringConstraints(pattern=ENTITY_TAGS)] | None,
    Header(description="Answer 304 if the task still has one of these ETags"),
    header_schema(ENTITY_TAGS, '"1-1"'),
]
IdempotencyKey = Annotated[
    Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY)] | None,
    Header(description="1-255 printable ASCII characters; a retry with the same key and body returns the original"),
    header_schema(IDEMPOTENCY_KEY),
]

# Headers that successful task responses always carry, documented so schema-driven tests check them.
ETAG = {"ETag": header_doc("Strong validator of this version of the task", rf"^{OPAQUE_TAG}$")}
CREATED = {**ETAG, "Location": header_doc("Where the new task lives", r"^/tasks/[0-9]+$")}
PAGE = {
    "X-Total-Count": header_doc("Tasks matching the filters, on every page", r"^[0-9]+$"),
    "Link": header_doc('RFC 8288 links: rel="first", and rel="next" unless this is the last page', r'rel="first"'),
}

router = APIRouter()
tasks = APIRouter(prefix="/tasks", tags=["tasks"], responses=problems(401, 422, 503))
admin = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=problems(401, 403, 503)
)


# --- service -----------------------------------------------------------------


@router.get("/", tags=["service"])
async def root() -> ServiceInfo:
    return ServiceInfo(name="Tasks API", version=VERSION)


@router.get("/health", tags=["service"])
async def health() -> Health:
    """Liveness: answers without touching storage, so a slow database never restarts the app."""
    return Health()


@router.get("/ready", tags=["service"], responses=problems(503))
async def ready(db: Db) -> Readiness:
    """Readiness: 200 only when storage answers."""
    await db.ping()
    return Readiness(storage=db.kind)


# --- users and tokens --------------------------------------------------------


def client_address(request: Request) -> str:
    """The connection's peer: uvicorn rewrites it from X-Forwarded-For only for FORWARDED_ALLOW_IPS."""
    return request.client.host if request.client else "unknown"


def too_many(wait: int, detail: str) -> HTTPException:
    return HTTPException(429, detail, {"Retry-After": str(wait)})


@router.post("/auth/register", status_code=201, tags=["auth"], responses=problems(409, 413, 422, 429, 503))
async def register(data: UserCreate, request: Request, db: Db, settings: AppSettings) -> User:
    limits: RateLimits = request.app.state.rate_limits
    wait = await run_in_threadpool(limits.register.take, client_address(request))  # Redis calls block
    if wait is not None:
        raise too_many(wait, "Too many registrations from this address; wait before trying again")
    password_hash = await hash_password(data.password, settings.storage_timeout_seconds)
    return await db.create_user(data.email, password_hash)


@router.post("/auth/token", tags=["auth"], responses=problems(401, 413, 422, 429, 503))
async def login(form: Annotated[LoginForm, Form()], request: Request, db: Db, settings: AppSettings) -> Token:
    """OAuth2 password flow (form fields `username` = email, `password`), as Swagger's Authorize sends it."""
    limits: RateLimits = request.app.state.rate_limits
    client, email = client_address(request), form.username.strip().lower()
    wait = await run_in_threadpool(limits.take_login, client, email)  # Redis calls block
    if wait is not None:
        raise too_many(wait, "Too many failed logins; wait before trying again")
    credentials = await authenticate(db, email, form.password, settings.storage_timeout_seconds)
    if credentials is None:
        raise unauthorized("Incorrect email or password")
    await run_in_threadpool(limits.login_succeeded, client, email)
    return create_access_token(credentials, settings)


@router.get("/users/me", tags=["auth"], responses=problems(401, 503))
async def read_me(user: CurrentUser) -> User:
    return user


# --- tasks -------------------------------------------------------------------


def _with_etag(response: Response, task: Task) -> Task:
    response.headers["ETag"] = etag(task)
    return task


@tasks.post("", status_code=201, responses={**problems(413), 201: {"description": "Created", "headers": CREATED}})
async def create_task(
    data: TaskCreate,
    user: CurrentUser,
    db: Db,
    response: Response,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Task:
    """Create a task. Send an `Idempotency-Key` to make retries safe: a replay returns the original."""
    idempotency = None
    if idempotency_key is not None:
        idempotency = IdempotencyRequest.for_body(idempotency_key, data, settings.idempotency_ttl_hours)
    task = await db.create_task(user.id, data, idempotency)
    response.headers["Location"] = f"/tasks/{task.id}"
    return _with_etag(response, task)


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each field of `model` as an OpenAPI query parameter, enum definitions written in place."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})

    def resolved(node: Any) -> Any:
        if isinstance(node, list):
            return [resolved(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            node = {**definitions[node["$ref"].rpartition("/")[2]], **node}
            del node["$ref"]
        return {key: resolved(value) for key, value in node.items()}

    return [
        {"name": name, "in": "query", "required": False, "schema": resolved(field)}
        | ({"description": field["description"]} if "description" in field else {})
        for name, field in schema["properties"].items()
    ]


# `?status=a&status=b`: list fields take every value given, the others the last one.
REPEATABLE = {name for name, field in TaskQuery.model_fields.items() if get_origin(field.annotation) is list}


async def task_query(request: Request) -> TaskQuery:
    """GET /tasks' query string as a `TaskQuery`: what `Annotated[TaskQuery, Query()]` does, by hand.

    Speed: FastAPI's Query() model re-inspects every field's type on each request, a fifth of a
    listing's cost (measured with bench/); `query_parameters` documents the same fields."""
    params = request.query_params
    values = {name: params.getlist(name) if name in REPEATABLE else params[name] for name in params}
    try:
        return TaskQuery.model_validate(values)
    except ValidationError as error:
        raise RequestValidationError(
            [{**issue, "loc": ("query", *issue["loc"])} for issue in error.errors(include_url=False)]
        ) from None


@tasks.get(
    "",
    responses={200: {"description": "A page of tasks", "headers": PAGE}},
    openapi_extra={"parameters": query_parameters(TaskQuery)},
)
async def list_tasks(
    query: Annotated[TaskQuery, Depends(task_query)],
    user: CurrentUser,
    db: Db,
    response: Response,
    settings: AppSettings,
) -> TaskPage:
    """Filter, sort and page through your tasks (an admin sees everyone's)."""
    after = decode_cursor(query.cursor, query, settings.secret_key) if query.cursor else None
    found, total = await db.list_tasks(owner_scope(user), TaskListing(query, after))
    items = found[: query.limit]
    next_cursor = encode_cursor(items[-1], query, settings.secret_key) if len(found) > query.limit else None
    response.headers["X-Total-Count"] = str(total)
    response.headers["Link"] = link_header("/tasks", query, next_cursor)
    offset = 0 if query.cursor else query.offset or 0
    return TaskPage(items=items, total=total, limit=query.limit, offset=offset, next_cursor=next_cursor)


@tasks.get(
    "/{task_id}",
    response_model=Task,
    responses={
        **problems(404),
        200: {"description": "The task", "headers": ETAG},
        304: {"description": "Not Modified: your copy is current", "headers": ETAG},
    },
)
async def read_task(
    task_id: TaskId,
    user: CurrentUser,
    db: Db,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Task | Response:
    task = await db.get_task(task_id, owner_scope(user))
    if not_modified(if_none_match, etag(task)):
        return Response(status_code=304, headers={"ETag": etag(task)})
    return _with_etag(response, task)


@tasks.put("/{task_id}", responses={**problems(404, 412, 413), 200: {"description": "The task", "headers": ETAG}})
async def replace_task(
    task_id: TaskId, data: TaskCreate, user: CurrentUser, db: Db, response: Response, if_match: IfMatch = None
) -> Task:
    """Full replace: fields left out take their defaults."""
    task = await db.update_task(task_id, owner_scope(user), data.model_dump(), precondition(if_match, task_id))
    return _with_etag(response, task)


@tasks.patch("/{task_id}", responses={**problems(404, 412, 413), 200: {"description": "The task", "headers": ETAG}})
async def update_task(
    task_id: TaskId, data: TaskPatch, user: CurrentUser, db: Db, response: Response, if_match: IfMatch = None
) -> Task:
    """Change only the fields sent; `null` clears `description` or `due_date`."""
    task = await db.update_task(task_id, owner_scope(user), data.changes(), precondition(if_match, task_id))
    return _with_etag(response, task)


@tasks.delete("/{task_id}", status_code=204, response_class=Response, responses=problems(404, 412))
async def delete_task(task_id: TaskId, user: CurrentUser, db: Db, if_match: IfMatch = None) -> None:
    await db.delete_task(task_id, owner_scope(user), precondition(if_match, task_id))


# --- admin -------------------------------------------------------------------


@admin.get("/users")
async def list_users(db: Db) -> list[User]:
    return await db.list_users()


@admin.delete("/tasks")
async def delete_all_tasks(db: Db) -> Deleted:
    return Deleted(deleted=await db.delete_all_tasks())


# --- wiring ------------------------------------------------------------------


def open_storage(settings: Settings) -> Storage:
    """The backend DATABASE_URL names: the dict store, or SQL through `crud.py`."""
    if settings.storage_kind == "memory":
        return MemoryStore()
    engine = create_db_engine(settings.database_url, settings.storage_timeout_seconds)
    if settings.storage_kind == "sqlite":
        upgrade_to_head(engine)  # a fresh file is ready with no manual step
    elif not schema_is_current(engine):
        raise RuntimeError("The database schema is not at the latest migration: run `alembic upgrade head` first")
    return SqlStore(engine)


async def seed(db: Storage, settings: Settings) -> None:
    """Demo data into an empty store (when enabled), then the configured admin account."""
    if settings.load_demo_data and await db.count_users() == 0:
        with suppress(EmailTaken):  # another worker, starting at the same moment, seeded first
            await load_demo_data(db, settings.storage_timeout_seconds)
    if settings.admin_email and settings.admin_password:
        await ensure_configured_admin(db, settings.admin_email.strip().lower(), settings.admin_password, settings)


async def ensure_configured_admin(db: Storage, email: str, password: str, settings: Settings) -> None:
    """ADMIN_EMAIL becomes an admin with ADMIN_PASSWORD. A new password gets a new token key,
    so tokens issued for the old one stop working; the same password keeps them valid."""
    wait_seconds = settings.storage_timeout_seconds
    current = await db.get_credentials(email)
    if current and current.user.is_admin and await verify_password(password, current.password_hash, wait_seconds):
        return
    await db.ensure_admin(email, await hash_password(password, wait_seconds))


def configure_logging() -> None:
    """One JSON line per request on stderr, beside uvicorn's own output."""
    logger = logging.getLogger("tasks")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_logging()
    app.state.storage = db = open_storage(settings)
    await seed(db, settings)
    # What exists now (modules, schemas, caches) lives as long as the app: frozen, it is no
    # longer rescanned by every full garbage collection, which took 75 ms pauses under load.
    gc.freeze()
    yield
    gc.unfreeze()  # a process that starts apps again (the tests) can then free this one
    await db.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Tasks API",
        version=VERSION,
        description="A small, complete REST API for personal tasks. Log in with **Authorize** to try it.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(
        settings.login_rate_limit,
        settings.login_client_rate_limit,
        settings.register_rate_limit,
        settings.rate_limit_storage,
    )
    for routes in (tasks, router, admin):  # the busiest routes are matched first
        app.include_router(routes)
    install_problem_handlers(app)
    install_problem_openapi(app)
    mount_docs(app)
    # Added innermost first: a request meets RequestContext, then CORS, then the body limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"],
        expose_headers=["ETag", "Location", "Link", "X-Total-Count", "X-Request-ID", "Retry-After"],
    )
    app.add_middleware(RequestContextMiddleware)
    return app


app = create_app()
