"""The Tasks API: every route, then the app that serves them.

Run it with `uvicorn main:app --reload`. DATABASE_URL chooses the storage (the in-memory
dict store by default); routes only ever see the `Storage` interface, through `Db`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from auth import (
    CurrentUser,
    authenticate,
    create_access_token,
    hash_password,
    owner_scope,
    require_admin,
    unauthorized,
)
from docs import mount_docs
from errors import header_doc, install_problem_handlers, install_problem_openapi, problems
from etags import ETAG, IfMatch, IfNoneMatch, etag, not_modified, precondition
from middleware import BodySizeLimitMiddleware, ProblemCORSMiddleware, RequestContextMiddleware
from models import (
    Deleted,
    Health,
    LoginForm,
    Readiness,
    ServiceInfo,
    Task,
    TaskCreate,
    TaskPage,
    TaskQuery,
    TaskUpdate,
    Token,
    User,
    UserCreate,
)
from pagination import PAGE_HEADERS, decode_cursor, encode_cursor, link_header
from rate_limit import RateLimits, client_address, too_many
from settings import AppSettings, Settings
from startup import configure_logging, open_storage, seed
from storage import MAX_ID, Db, IdempotencyKey, IdempotencyRequest, TaskListing

VERSION = "1.0.0"

TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]
CREATED = {**ETAG, "Location": header_doc("Where the new task lives", r"^/tasks/[0-9]+$")}

tasks = APIRouter(prefix="/tasks", tags=["tasks"], responses=problems(401, 422, 503))
users = APIRouter(tags=["auth"])
service = APIRouter(tags=["service"])
admin = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=problems(401, 403, 503)
)


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


@tasks.get("", responses={200: {"description": "A page of tasks", "headers": PAGE_HEADERS}})
async def list_tasks(
    query: Annotated[TaskQuery, Query()], user: CurrentUser, db: Db, response: Response, settings: AppSettings
) -> TaskPage:
    """Filter, sort and page through your tasks (an admin sees everyone's)."""
    after = decode_cursor(query.cursor, query, settings.secret_key) if query.cursor else None
    found, total = await db.list_tasks(owner_scope(user), TaskListing(query, after))
    items = found[: query.limit]  # storage reads one task more than the page: is there a next page?
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
    task_id: TaskId, user: CurrentUser, db: Db, response: Response, if_none_match: IfNoneMatch = None
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
    task_id: TaskId, data: TaskUpdate, user: CurrentUser, db: Db, response: Response, if_match: IfMatch = None
) -> Task:
    """Change only the fields sent; `null` clears an optional field such as `description`."""
    task = await db.update_task(task_id, owner_scope(user), data.changes(), precondition(if_match, task_id))
    return _with_etag(response, task)


@tasks.delete("/{task_id}", status_code=204, response_class=Response, responses=problems(404, 412))
async def delete_task(task_id: TaskId, user: CurrentUser, db: Db, if_match: IfMatch = None) -> None:
    await db.delete_task(task_id, owner_scope(user), precondition(if_match, task_id))


# --- users and tokens --------------------------------------------------------


@users.post("/auth/register", status_code=201, responses=problems(409, 413, 422, 429, 503))
async def register(data: UserCreate, request: Request, db: Db, settings: AppSettings) -> User:
    limits: RateLimits = request.app.state.rate_limits
    wait = await run_in_threadpool(limits.register.take, client_address(request))  # Redis calls block
    if wait is not None:
        raise too_many(wait, "Too many registrations from this address; wait before trying again")
    password_hash = await hash_password(data.password, settings.storage_timeout_seconds)
    return await db.create_user(data.email, password_hash)


@users.post("/auth/token", responses=problems(401, 413, 422, 429, 503))
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


@users.get("/users/me", responses=problems(401, 503))
async def read_me(user: CurrentUser) -> User:
    return user


# --- service -----------------------------------------------------------------


@service.get("/")
async def root() -> ServiceInfo:
    return ServiceInfo(name="Tasks API", version=VERSION)


@service.get("/health")
async def health() -> Health:
    """Liveness: answers without touching storage, so a slow database never restarts the app."""
    return Health()


@service.get("/ready", responses=problems(503))
async def ready(db: Db) -> Readiness:
    """Readiness: 200 only when storage answers."""
    await db.ping()
    return Readiness(storage=db.kind)


# --- admin -------------------------------------------------------------------


@admin.get("/users")
async def list_users(db: Db) -> list[User]:
    return await db.list_users()


@admin.delete("/tasks")
async def delete_all_tasks(db: Db) -> Deleted:
    return Deleted(deleted=await db.delete_all_tasks())


# --- the app -----------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_logging()
    app.state.storage = db = open_storage(settings)
    await seed(db, settings)
    yield
    await db.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Tasks API",
        version=VERSION,
        description="A small, complete REST API for personal tasks. Log in with **Authorize** to try it.",
        lifespan=lifespan,
        docs_url=None,  # mount_docs serves both UIs with their assets, so they work offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(
        settings.login_rate_limit,
        settings.login_client_rate_limit,
        settings.register_rate_limit,
        settings.rate_limit_storage,
    )
    for routes in (tasks, users, service, admin):
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
