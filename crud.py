"""The SQL backend's queries: each function does one short transaction's work on a `Connection`,
like a flaskr view, building its statements where it runs; `sql_store.SqlStore` runs them.

SQLAlchemy Core rather than the ORM: rows map straight to the Pydantic models by column name, a
task's tags coming in the same query. Each call is one short transaction, so no Session is needed.
"""

from typing import Any

from sqlalchemy import JSON, String, Table, delete, func, insert, literal_column, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.expression import ColumnElement, Select

import db_models
from models import SortField, SortOrder, Task, TaskCreate, TaskQuery, User
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

TABLES = db_models.Base.metadata.tables
USERS, TASKS, TASK_TAGS, KEYS = TABLES["users"], TABLES["tasks"], TABLES["task_tags"], TABLES["idempotency_keys"]
COUNTS = TABLES["task_counts"]
# Columns map to the API models by name; the rest (password hashes, search keys) stay in SQL.
USER_COLUMNS = [column for column in USERS.c if column.name in User.model_fields]
TASK_COLUMNS = [column for column in TASKS.c if column.name in Task.model_fields]


# --- users -------------------------------------------------------------------
def create_user(connection: Connection, email: str, password_hash: str, is_admin: bool = False) -> User:
    values = {"email": email, "password_hash": password_hash, "token_key": new_token_key(), "is_admin": is_admin}
    statement = insert(USERS).values(**values, created_at=utc_now()).returning(*USER_COLUMNS)
    return User.model_validate(connection.execute(statement).one())


def get_user(connection: Connection, user_id: int, token_key: str) -> User | None:
    row = connection.execute(select(*USER_COLUMNS).where(USERS.c.id == user_id, USERS.c.token_key == token_key)).first()
    return User.model_validate(row) if row else None


def user_exists(connection: Connection, user_id: int) -> bool:
    return connection.scalar(select(USERS.c.id).where(USERS.c.id == user_id)) is not None


def get_credentials(connection: Connection, email: str) -> UserCredentials | None:
    statement = select(*USER_COLUMNS, USERS.c.password_hash, USERS.c.token_key).where(USERS.c.email == email)
    row = connection.execute(statement).first()
    return UserCredentials(User.model_validate(row), row.password_hash, row.token_key) if row else None


def ensure_admin(connection: Connection, email: str, password_hash: str) -> User:
    if (row := connection.execute(select(*USER_COLUMNS).where(USERS.c.email == email)).first()) is None:
        return create_user(connection, email, password_hash, is_admin=True)
    values = {"is_admin": True, "password_hash": password_hash, "token_key": new_token_key()}
    connection.execute(update(USERS).where(USERS.c.id == row.id).values(values))
    return User.model_validate({**row._asdict(), "is_admin": True})


def list_users(connection: Connection) -> list[User]:
    return [User.model_validate(row) for row in connection.execute(select(*USER_COLUMNS).order_by(USERS.c.id))]


def count_users(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(USERS)) or 0


# --- tasks -------------------------------------------------------------------
def _tag_list(dialect: str) -> ColumnElement[Any]:
    """A task's tags in order, as one list column, so a task (or a page) is one query, not two."""
    this_task = TASK_TAGS.c.task_id == TASKS.c.id
    if dialect == "postgresql":
        tags = func.array_agg(aggregate_order_by(TASK_TAGS.c.tag, TASK_TAGS.c.position), type_=ARRAY(String))
        no_tags = literal_column("'{}'::varchar[]", ARRAY(String))
        return select(func.coalesce(tags, no_tags)).where(this_task).scalar_subquery().label("tags")
    # SQLite (3.40) has no ORDER BY inside an aggregate: aggregate a subquery read in position order.
    ordered = select(TASK_TAGS.c.tag).where(this_task).order_by(TASK_TAGS.c.position).correlate(TASKS).subquery()
    return select(func.json_group_array(ordered.c.tag, type_=JSON)).scalar_subquery().label("tags")


def _select_tasks(connection: Connection) -> Select[Any]:
    return select(*TASK_COLUMNS, _tag_list(connection.dialect.name))


def _search_keys(fields: dict[str, Any]) -> dict[str, Any]:
    """The lower-cased copies of title and description that search and title sort use."""
    searched = {name: value for name, value in fields.items() if name in ("title", "description")}
    return {f"{name}_key": value.lower() if value is not None else None for name, value in searched.items()}


def _insert_tags(connection: Connection, task_id: int, tags: list[str]) -> None:
    if tags:
        rows = [{"task_id": task_id, "position": index, "tag": tag} for index, tag in enumerate(tags)]
        connection.execute(insert(TASK_TAGS), rows)


def _find(connection: Connection, task_id: int, owner_id: int | None, for_update: bool = False) -> Row[Any]:
    """The task's row, if the owner has it (`owner_id=None` is an admin: anyone's)."""
    statement = _select_tasks(connection).where(TASKS.c.id == task_id)
    if owner_id is not None:
        statement = statement.where(TASKS.c.owner_id == owner_id)
    if for_update:  # PostgreSQL: lock the row so check-then-write is atomic; SQLite holds the write lock already
        statement = statement.with_for_update(of=TASKS)
    if (row := connection.execute(statement).first()) is None:
        raise TaskNotFound(task_id)
    return row


def _check(row: Row[Any], precondition: Precondition | None) -> None:
    if precondition is not None and not precondition.allows(row.version):
        raise PreconditionFailed(row.id)


def _replay(connection: Connection, owner_id: int, idempotency: IdempotencyRequest) -> Task | None:
    """The remembered answer for this key, or None when the key is new or expired (then it is freed)."""
    this_key = (KEYS.c.owner_id == owner_id) & (KEYS.c.key == idempotency.key)
    if (row := connection.execute(select(KEYS).where(this_key)).first()) is None:
        return None
    if row.created_at >= idempotency.not_before:
        if row.fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused()
        return Task.model_validate_json(row.response_body)
    connection.execute(delete(KEYS).where(this_key))  # expired: the key may be used afresh
    return None


def _count(connection: Connection, owner_id: int, *changes: tuple[str, int, int]) -> None:
    """Keep `task_counts` in step with a write: add each (status, priority, delta) to the owner's
    count, creating the row on first use. Always in key order, so two transactions lock count
    rows in the same order and cannot deadlock on PostgreSQL."""
    insert_into = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    add_delta = {"tasks": COUNTS.c.tasks + literal_column("excluded.tasks")}  # `excluded`: the row proposed
    add = insert_into(COUNTS).on_conflict_do_update(index_elements=["owner_id", "status", "priority"], set_=add_delta)
    for status, priority, delta in sorted(changes):
        connection.execute(add, {"owner_id": owner_id, "status": status, "priority": priority, "tasks": delta})


def recount_tasks(connection: Connection) -> None:
    """Rebuild every task count from the tasks table: for rows loaded with plain SQL (bench/ does)."""
    connection.execute(delete(COUNTS))
    key = (TASKS.c.owner_id, TASKS.c.status, TASKS.c.priority)
    counted = select(*key, func.count()).group_by(*key)
    connection.execute(insert(COUNTS).from_select(["owner_id", "status", "priority", "tasks"], counted))


def create_task(
    connection: Connection, owner_id: int, data: TaskCreate, idempotency: IdempotencyRequest | None = None
) -> Task:
    if idempotency is not None and (earlier := _replay(connection, owner_id, idempotency)) is not None:
        return earlier
    fields = data.model_dump(exclude={"tags"})  # the tags live in task_tags
    values = {**fields, **_search_keys(fields), "owner_id": owner_id, "version": 1}
    values["created_at"] = values["updated_at"] = now = utc_now()
    task_id = connection.execute(insert(TASKS).returning(TASKS.c.id), values).scalar_one()
    _insert_tags(connection, task_id, data.tags)
    _count(connection, owner_id, (data.status, data.priority, 1))
    task = Task.model_validate({**values, "id": task_id, "tags": data.tags})
    if idempotency is not None:
        key = {"owner_id": owner_id, "key": idempotency.key, "fingerprint": idempotency.fingerprint}
        connection.execute(insert(KEYS).values(**key, response_body=task.model_dump_json(), created_at=now))
    return task


def get_task(connection: Connection, task_id: int, owner_id: int | None) -> Task:
    return Task.model_validate(_find(connection, task_id, owner_id))


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
    # The conditional UPDATE, setting `values`: WHERE id = ? AND version = ? matches nothing if someone wrote first.
    unchanged = update(TASKS).where(TASKS.c.id == task_id, TASKS.c.version == row.version)
    if connection.execute(unchanged, values).rowcount != 1:
        raise PreconditionFailed(task_id)
    if "tags" in changes:
        connection.execute(delete(TASK_TAGS).where(TASK_TAGS.c.task_id == task_id))
        _insert_tags(connection, task_id, changes["tags"])
    counted_as = (values.get("status", row.status), values.get("priority", row.priority))
    if counted_as != (row.status, row.priority):
        _count(connection, row.owner_id, (row.status, row.priority, -1), (*counted_as, 1))
    # The answer is the row we read plus what we wrote: no second read needed.
    return Task.model_validate({**row._asdict(), **changes, **values})


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


# --- listing -----------------------------------------------------------------
# Each sort reads the column of its name, except that titles sort by their lower-cased copy.
SORT_COLUMNS = {field: TASKS.c["title_key" if field is SortField.title else field.value] for field in SortField}


def _counted_filters(table: Table, owner_id: int | None, query: TaskQuery) -> list[ColumnElement[bool]]:
    """The owner, status and priority filters, on `tasks` or on `task_counts` (which has those columns)."""
    conditions = [table.c.owner_id == owner_id] if owner_id is not None else []
    if len(query.status) == 1:  # `=` rather than `IN (…)`: the planner then walks the status index in sort order
        conditions.append(table.c.status == query.status[0])
    elif query.status:
        conditions.append(table.c.status.in_(query.status))
    if query.priority is not None:
        conditions.append(table.c.priority == query.priority)
    return conditions


def _uncounted_filters(query: TaskQuery) -> list[ColumnElement[bool]]:
    """The filters `task_counts` cannot answer: tags, search and due dates."""
    conditions: list[ColumnElement[bool]] = []
    if query.tag:  # a task carries every tag asked for when it has as many distinct ones among them
        tags = sorted(set(query.tag))
        tagged = select(TASK_TAGS.c.task_id).where(TASK_TAGS.c.tag.in_(tags)).group_by(TASK_TAGS.c.task_id)
        conditions.append(TASKS.c.id.in_(tagged.having(func.count(TASK_TAGS.c.tag.distinct()) == len(tags))))
    if query.q is not None:  # escape LIKE's own wildcards: a search for "50%" means those characters
        escaped = query.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        title, description = TASKS.c.title_key, TASKS.c.description_key
        conditions.append(or_(title.like(f"%{escaped}%", escape="\\"), description.like(f"%{escaped}%", escape="\\")))
    if query.due_before is not None:
        conditions.append(TASKS.c.due_date <= query.due_before)
    if query.due_after is not None:
        conditions.append(TASKS.c.due_date >= query.due_after)
    return conditions


def _total(connection: Connection, owner_id: int | None, query: TaskQuery) -> int:
    """How many tasks match: when only owner, status and priority filter, a sum of `task_counts`
    rows, whose cost does not grow with the number of tasks; otherwise a count(*)."""
    if uncounted := _uncounted_filters(query):
        statement = select(func.count()).where(*_counted_filters(TASKS, owner_id, query), *uncounted)
    else:
        statement = select(func.coalesce(func.sum(COUNTS.c.tasks), 0)).where(*_counted_filters(COUNTS, owner_id, query))
    return int(connection.execute(statement).scalar_one())


def _order(query: TaskQuery) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    column, descending = SORT_COLUMNS[query.sort_by], query.order is SortOrder.desc
    ordered = column.desc() if descending else column.asc()
    if query.sort_by is SortField.due_date:  # the one nullable sort column; on the others NULLS LAST
        ordered = ordered.nulls_last()  # would stop PostgreSQL reading their index backwards
    return ordered, TASKS.c.id.desc() if descending else TASKS.c.id.asc()


def _after(query: TaskQuery, value: Any, task_id: int) -> ColumnElement[bool]:
    """The keyset predicate: tasks that sort strictly after (value, task_id)."""
    column, descending = SORT_COLUMNS[query.sort_by], query.order is SortOrder.desc
    if value is None:  # a cursor among the tasks without a due date, which come last
        return column.is_(None) & (TASKS.c.id < task_id if descending else TASKS.c.id > task_id)
    key = tuple_(column, TASKS.c.id)  # compared with a plain tuple, the values take the columns' types
    beyond = key < (value, task_id) if descending else key > (value, task_id)
    return or_(column.is_(None), beyond) if query.sort_by is SortField.due_date else beyond


def page_ids(owner_id: int | None, listing: TaskListing) -> Select[Any]:
    """A page's task ids in order, one more than the limit (is there a next page?): an index walk
    with no sort step, for every sort and order (tests/test_query_plans.py asks both planners)."""
    query, after = listing.query, listing.after
    filters = [*_counted_filters(TASKS, owner_id, query), *_uncounted_filters(query)]
    ids = select(TASKS.c.id).where(*filters).order_by(*_order(query)).limit(query.limit + 1)
    return ids.offset(query.offset) if after is None else ids.where(_after(query, after.value, after.task_id))


def list_tasks(connection: Connection, owner_id: int | None, listing: TaskListing) -> tuple[list[Task], int]:
    # The page's ids first, from an index alone, then only those tasks with their tags: a row an
    # OFFSET skips costs an index step, where PostgreSQL would otherwise gather its tags too.
    in_page = TASKS.c.id.in_(page_ids(owner_id, listing).scalar_subquery())
    rows = connection.execute(_select_tasks(connection).where(in_page).order_by(*_order(listing.query)))
    return [Task.model_validate(row) for row in rows], _total(connection, owner_id, listing.query)
