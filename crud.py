"""The SQL backend's queries: plain SQLAlchemy Core functions, which `sql_store.SqlStore` runs.

Each function takes a `Connection` and does one short transaction's work, like a flaskr
view's queries.

Speed (measured with bench/): these are Core statements, not ORM queries, so rows become API
models directly, with no Session, identity map or ORM objects in between, and a task's tags come
in the same query. `db_models.py` still describes the tables, for Alembic and for Core.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Connection,
    Insert,
    Integer,
    Row,
    ScalarSelect,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

import db_models
from models import SortField, SortOrder, Task, TaskCreate, User
from storage import (
    IdempotencyKeyReused,
    IdempotencyRequest,
    Precondition,
    PreconditionFailed,
    TaskListing,
    TaskNotFound,
    UserCredentials,
    new_token_key,
    utc_now,
)

T = TypeVar("T")

TABLES = db_models.Base.metadata.tables
USERS, TASKS, TASK_TAGS, KEYS = TABLES["users"], TABLES["tasks"], TABLES["task_tags"], TABLES["idempotency_keys"]
COUNTS = TABLES["task_counts"]
USER_COLUMNS = (USERS.c.id, USERS.c.email, USERS.c.is_admin, USERS.c.created_at)
TASK_FIELDS = ("id", "title", "description", "status", "priority", "due_date", "owner_id")
TASK_COLUMNS = tuple(TASKS.c[name] for name in (*TASK_FIELDS, "created_at", "updated_at", "version"))


# --- users -------------------------------------------------------------------


def create_user(connection: Connection, email: str, password_hash: str, is_admin: bool = False) -> User:
    created_at = utc_now()
    statement = insert(USERS).values(
        email=email, password_hash=password_hash, token_key=new_token_key(), is_admin=is_admin, created_at=created_at
    )
    user_id = connection.execute(statement.returning(USERS.c.id)).scalar_one()
    return User(id=user_id, email=email, is_admin=is_admin, created_at=created_at)


def get_user(connection: Connection, user_id: int, token_key: str) -> User | None:
    statement = select(*USER_COLUMNS).where(USERS.c.id == user_id, USERS.c.token_key == token_key)
    row = connection.execute(statement).first()
    return User.model_validate(row._asdict()) if row else None


def user_exists(connection: Connection, user_id: int) -> bool:
    return connection.scalar(select(USERS.c.id).where(USERS.c.id == user_id)) is not None


def get_credentials(connection: Connection, email: str) -> UserCredentials | None:
    statement = select(*USER_COLUMNS, USERS.c.password_hash, USERS.c.token_key).where(USERS.c.email == email)
    row = connection.execute(statement).first()
    if row is None:
        return None
    return UserCredentials(User.model_validate(row._asdict()), row.password_hash, row.token_key)


def ensure_admin(connection: Connection, email: str, password_hash: str) -> User:
    row = connection.execute(select(*USER_COLUMNS).where(USERS.c.email == email)).first()
    if row is None:
        return create_user(connection, email, password_hash, is_admin=True)
    values = {"is_admin": True, "password_hash": password_hash, "token_key": new_token_key()}
    connection.execute(update(USERS).where(USERS.c.id == row.id).values(values))
    return User.model_validate({**row._asdict(), "is_admin": True})


def list_users(connection: Connection) -> list[User]:
    rows = connection.execute(select(*USER_COLUMNS).order_by(USERS.c.id))
    return [User.model_validate(row._asdict()) for row in rows]


def count_users(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(USERS)) or 0


# --- tasks -------------------------------------------------------------------


@cache  # statements are immutable: build each dialect's once
def _select_tasks_on(dialect: str) -> Select[Any]:
    return select(*TASK_COLUMNS, _tag_list(dialect).label("tags"))


def _tag_list(dialect: str) -> ScalarSelect[Any]:
    """A task's tags in order, as one list column, so a task (or a page) is one query, not two."""
    if dialect == "postgresql":
        tags = func.array_agg(aggregate_order_by(TASK_TAGS.c.tag, TASK_TAGS.c.position), type_=ARRAY(String))
        aggregate = func.coalesce(tags, literal_column("'{}'::varchar[]"), type_=ARRAY(String))
        return select(aggregate).where(TASK_TAGS.c.task_id == TASKS.c.id).scalar_subquery()
    # SQLite (3.40) has no ORDER BY inside an aggregate: aggregate a subquery read in position order.
    this_task = TASK_TAGS.c.task_id == TASKS.c.id
    ordered = select(TASK_TAGS.c.tag).where(this_task).order_by(TASK_TAGS.c.position).correlate(TASKS).subquery()
    return select(func.json_group_array(ordered.c.tag, type_=JSON)).scalar_subquery()


def _task(row: Row[Any] | Mapping[str, Any]) -> Task:
    return Task.model_validate(row._asdict() if isinstance(row, Row) else row)


def _search_keys(fields: dict[str, Any]) -> dict[str, Any]:
    """The lower-cased copies of title and description that search and title sort use."""
    keys = {}
    if "title" in fields:
        keys["title_key"] = fields["title"].lower()
    if "description" in fields:
        keys["description_key"] = fields["description"].lower() if fields["description"] is not None else None
    return keys


INSERT_TAGS = insert(TASK_TAGS)


def _insert_tags(connection: Connection, task_id: int, tags: list[str]) -> None:
    if tags:
        rows = [{"task_id": task_id, "position": index, "tag": tag} for index, tag in enumerate(tags)]
        connection.execute(INSERT_TAGS, rows)


@cache  # built once with bindparam()s: SQLAlchemy then reuses its cache key and compiled SQL
def _select_task_by_id(dialect: str, owned: bool, for_update: bool) -> Select[Any]:
    statement = _select_tasks_on(dialect).where(TASKS.c.id == bindparam("task_id"))
    if owned:
        statement = statement.where(TASKS.c.owner_id == bindparam("owner_id"))
    if for_update:  # PostgreSQL: lock the row so check-then-write is atomic; SQLite holds the write lock already
        statement = statement.with_for_update(of=TASKS)
    return statement


def _find(connection: Connection, task_id: int, owner_id: int | None, for_update: bool = False) -> Row[Any]:
    statement = _select_task_by_id(connection.dialect.name, owner_id is not None, for_update)
    row = connection.execute(statement, {"task_id": task_id, "owner_id": owner_id}).first()
    if row is None:
        raise TaskNotFound(task_id)
    return row


def _check(row: Row[Any], precondition: Precondition | None) -> None:
    if precondition is not None and not precondition.allows(row.version):
        raise PreconditionFailed(row.id)


def _replay(connection: Connection, owner_id: int, idempotency: IdempotencyRequest) -> Task | None:
    """The remembered answer for this key, or None when the key is new or expired (then it is freed)."""
    this_key = (KEYS.c.owner_id == owner_id) & (KEYS.c.key == idempotency.key)
    earlier = connection.execute(select(KEYS.c.fingerprint, KEYS.c.response_body, KEYS.c.created_at).where(this_key))
    row = earlier.first()
    if row is None:
        return None
    if row.created_at >= idempotency.not_before:
        if row.fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused()
        return Task.model_validate_json(row.response_body)
    connection.execute(delete(KEYS).where(this_key))  # expired: the key may be used afresh
    return None


@cache
def _count_change(dialect: str) -> Insert:
    """Add `delta` to one (owner, status, priority) count, creating the row on first use."""
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    keys: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in ("owner_id", "status", "priority")}
    statement = insert_into(COUNTS).values(**keys, tasks=bindparam("delta"))
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={"tasks": COUNTS.c.tasks + statement.excluded.tasks}
    )


def _count(connection: Connection, owner_id: int, *changes: tuple[str, int, int]) -> None:
    """Apply (status, priority, delta) changes to an owner's task counts. Always in key order, so
    two transactions lock count rows in the same order and cannot deadlock on PostgreSQL."""
    statement = _count_change(connection.dialect.name)
    for status, priority, delta in sorted(changes):
        connection.execute(statement, {"owner_id": owner_id, "status": status, "priority": priority, "delta": delta})


def recount_tasks(connection: Connection) -> None:
    """Rebuild every task count from the tasks table: for rows loaded with plain SQL (bench/ does)."""
    connection.execute(delete(COUNTS))
    key = (TASKS.c.owner_id, TASKS.c.status, TASKS.c.priority)
    counted = select(*key, func.count()).group_by(*key)
    connection.execute(insert(COUNTS).from_select(["owner_id", "status", "priority", "tasks"], counted))


INSERT_TASK = insert(TASKS).returning(TASKS.c.id)


def create_task(
    connection: Connection, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None
) -> Task:
    if idempotency is not None and (earlier := _replay(connection, owner_id, idempotency)) is not None:
        return earlier
    now = utc_now()
    fields = data.model_dump()
    tags = fields.pop("tags")
    values = {**fields, **_search_keys(fields), "owner_id": owner_id, "created_at": now, "updated_at": now}
    task_id = connection.execute(INSERT_TASK, {**values, "version": 1}).scalar_one()
    _insert_tags(connection, task_id, tags)
    _count(connection, owner_id, (fields["status"], fields["priority"], 1))
    task = Task(id=task_id, tags=tags, owner_id=owner_id, created_at=now, updated_at=now, version=1, **fields)
    if idempotency is not None:
        response_body = task.model_dump_json()
        key = {"owner_id": owner_id, "key": idempotency.key, "fingerprint": idempotency.fingerprint}
        connection.execute(insert(KEYS).values(**key, response_body=response_body, created_at=now))
    return task


def get_task(connection: Connection, task_id: int, owner_id: int | None) -> Task:
    return _task(_find(connection, task_id, owner_id))


# The SET columns come from the parameters of each call; the statement itself is built once.
UPDATE_TASK_IF_UNCHANGED = update(TASKS).where(
    TASKS.c.id == bindparam("task_id"), TASKS.c.version == bindparam("read_version")
)


def update_task(
    connection: Connection,
    task_id: int,
    owner_id: int | None,
    changes: dict[str, Any],
    precondition: Precondition | None,
) -> Task:
    row = _find(connection, task_id, owner_id, for_update=True)
    _check(row, precondition)
    fields = {name: value for name, value in changes.items() if name != "tags"}
    values = {**fields, **_search_keys(fields), "updated_at": utc_now(), "version": row.version + 1}
    # The conditional UPDATE: WHERE id = ? AND version = ? matches nothing if someone wrote first.
    where = {"task_id": task_id, "read_version": row.version}
    if connection.execute(UPDATE_TASK_IF_UNCHANGED, {**values, **where}).rowcount != 1:
        raise PreconditionFailed(task_id)
    if "tags" in changes:
        connection.execute(delete(TASK_TAGS).where(TASK_TAGS.c.task_id == task_id))
        _insert_tags(connection, task_id, changes["tags"])
    counted_as = (values.get("status", row.status), values.get("priority", row.priority))
    if counted_as != (row.status, row.priority):
        _count(connection, row.owner_id, (row.status, row.priority, -1), (*counted_as, 1))
    # The answer is the row we read plus what we wrote: no second read needed.
    return _task({**row._asdict(), **changes, **values})


def delete_task(connection: Connection, task_id: int, owner_id: int | None, precondition: Precondition | None) -> None:
    row = _find(connection, task_id, owner_id, for_update=True)
    _check(row, precondition)
    statement = delete(TASKS).where(TASKS.c.id == task_id, TASKS.c.version == row.version)  # tags cascade
    if connection.execute(statement).rowcount != 1:
        raise PreconditionFailed(task_id)
    _count(connection, row.owner_id, (row.status, row.priority, -1))


def delete_all_tasks(connection: Connection) -> int:
    deleted = connection.execute(delete(TASKS)).rowcount
    connection.execute(delete(COUNTS))
    return deleted


SORT_COLUMNS: dict[SortField, ColumnElement[Any]] = {
    SortField.created_at: TASKS.c.created_at,
    SortField.updated_at: TASKS.c.updated_at,
    SortField.priority: TASKS.c.priority,
    SortField.title: TASKS.c.title_key,
    SortField.due_date: TASKS.c.due_date,
}


def _escape_like(text_value: str) -> str:
    return text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ListingShape:
    """What a listing's SQL depends on, values aside. The statements are built once per shape
    with bind parameters: building and cache-keying a fresh statement cost more than running it."""

    owned: bool
    statuses: int  # 0, 1, or 2 meaning "several"
    priority: bool
    tags: bool
    search: bool
    due_before: bool
    due_after: bool
    sort_by: SortField
    order: SortOrder
    start: Literal["offset", "after value", "after null"]  # "after null": a cursor inside the trailing NULLs

    @property
    def counted(self) -> bool:
        """Filters that `task_counts` answers: the total is a sum of counts, not a count(*)."""
        return not (self.tags or self.search or self.due_before or self.due_after)

    @classmethod
    def of(cls, owner_id: int | None, listing: TaskListing) -> "ListingShape":
        query, after = listing.query, listing.after
        return cls(
            owned=owner_id is not None,
            statuses=min(len(query.status), 2),
            priority=query.priority is not None,
            tags=bool(query.tag),
            search=query.q is not None,
            due_before=query.due_before is not None,
            due_after=query.due_after is not None,
            sort_by=query.sort_by,
            order=query.order,
            start="offset" if after is None else "after value" if after.value is not None else "after null",
        )


def listing_values(owner_id: int | None, listing: TaskListing) -> dict[str, Any]:
    """The bind parameter values of a listing's statements (see `_listing_statements`)."""
    query, after = listing.query, listing.after
    statuses = [status.value for status in query.status]
    return {
        "owner_id": owner_id,
        "status": statuses[0] if statuses else None,
        "statuses": statuses,
        "priority": query.priority,
        "pattern": f"%{_escape_like(query.q.lower())}%" if query.q is not None else None,
        "due_before": query.due_before,
        "due_after": query.due_after,
        "limit": query.limit + 1,  # one more than asked: is there a next page?
        "offset": query.offset or 0,
        "after_value": after.value if after is not None else None,
        "after_id": after.task_id if after is not None else None,
        "tags": sorted(set(query.tag)),
        "tag_count": len(set(query.tag)),
    }


def _filters(shape: ListingShape, table: Table = TASKS) -> list[ColumnElement[bool]]:
    """The WHERE clause on tasks or, for the filters it has columns for, on task_counts."""
    task = table.c
    conditions: list[ColumnElement[bool]] = []
    if shape.owned:
        conditions.append(task.owner_id == bindparam("owner_id"))
    if shape.statuses == 1:  # `=` rather than `IN (…)`: the planner then walks the status index in sort order
        conditions.append(task.status == bindparam("status"))
    elif shape.statuses:
        conditions.append(task.status.in_(bindparam("statuses", expanding=True)))
    if shape.priority:
        conditions.append(task.priority == bindparam("priority"))
    if shape.tags:  # a task carries every tag asked for when it has as many distinct ones among them
        tags = TASK_TAGS.c.tag
        tagged = select(TASK_TAGS.c.task_id).where(tags.in_(bindparam("tags", expanding=True)))
        tagged = tagged.group_by(TASK_TAGS.c.task_id).having(func.count(tags.distinct()) == bindparam("tag_count"))
        conditions.append(task.id.in_(tagged))
    if shape.search:
        pattern = bindparam("pattern", type_=String)
        conditions.append(
            or_(task.title_key.like(pattern, escape="\\"), task.description_key.like(pattern, escape="\\"))
        )
    if shape.due_before:
        conditions.append(task.due_date <= bindparam("due_before"))
    if shape.due_after:
        conditions.append(task.due_date >= bindparam("due_after"))
    return conditions


def _after(shape: ListingShape) -> ColumnElement[bool]:
    """The keyset predicate: rows that sort strictly after the cursor's position."""
    column, task_id = SORT_COLUMNS[shape.sort_by], TASKS.c.id
    after_value, after_id = bindparam("after_value", type_=column.type), bindparam("after_id", type_=Integer)
    descending = shape.order is SortOrder.desc
    if shape.start == "after null":  # tasks without a due date come last
        return column.is_(None) & (task_id < after_id if descending else task_id > after_id)
    key, cursor_key = tuple_(column, task_id), tuple_(after_value, after_id)
    beyond = key < cursor_key if descending else key > cursor_key
    return or_(column.is_(None), beyond) if shape.sort_by is SortField.due_date else beyond


def _order(shape: ListingShape) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    column, descending = SORT_COLUMNS[shape.sort_by], shape.order is SortOrder.desc
    ordered = column.desc() if descending else column.asc()
    if shape.sort_by is SortField.due_date:  # the one nullable sort column; on the others NULLS LAST
        ordered = ordered.nulls_last()  # would stop PostgreSQL reading their index backwards
    return ordered, TASKS.c.id.desc() if descending else TASKS.c.id.asc()


def page_ids(shape: ListingShape) -> Select[Any]:
    """A page's task ids in order (one more than the limit): an index walk with no sort step,
    for every sort and order (tests/test_query_plans.py asks both databases' planners)."""
    ids = select(TASKS.c.id).where(*_filters(shape)).order_by(*_order(shape)).limit(bindparam("limit"))
    return ids.offset(bindparam("offset")) if shape.start == "offset" else ids.where(_after(shape))


@lru_cache(maxsize=256)
def _listing_statements(dialect: str, shape: ListingShape) -> tuple[Select[Any], Select[Any]]:
    """The count and the page query of one listing shape, for one SQL dialect."""
    if shape.counted:
        count = select(func.coalesce(func.sum(COUNTS.c.tasks), 0, type_=Integer)).where(*_filters(shape, COUNTS))
    else:
        count = select(func.count()).select_from(TASKS).where(*_filters(shape))
    # The page's ids first, from an index alone; then only those tasks are read, with their tags.
    # Skipped rows then cost an index step each: PostgreSQL would otherwise gather the tags of
    # every row an OFFSET skips (9,000 of them for a deep page).
    in_page = TASKS.c.id.in_(page_ids(shape).scalar_subquery())
    return count, _select_tasks_on(dialect).where(in_page).order_by(*_order(shape))


def list_tasks(connection: Connection, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
    count, page = _listing_statements(connection.dialect.name, ListingShape.of(owner_id, listing))
    values = listing_values(owner_id, listing)
    total = connection.execute(count, values).scalar_one()
    rows = connection.execute(page, values)
    names = list(rows.keys())  # once per page: Row._asdict() would rebuild the names for every row
    return [Task.model_validate(dict(zip(names, row, strict=True))) for row in rows], total


def ping(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))
