"""SQLAlchemy 2 tables for the SQL backends (SQLite and PostgreSQL).

Alembic migrations are generated from these classes, and a test checks the two agree.
"""

from datetime import UTC, date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can drop or alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database: SQLite stores no offset, so we add it back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Random, and new whenever the password is set: tokens carry it, so a token dies with the
    # password it was issued for, and never passes to a later account that reuses the id.
    token_key: Mapped[str] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Lower-cased copies made in Python, so search and title sort fold case exactly like
    # the memory store on every database (SQLite's lower() only knows ASCII). PostgreSQL
    # compares them byte-wise ("C"), as SQLite and Python do, whatever the server's locale.
    # Text, not String(200): lower-casing can lengthen a title ("İ" becomes two characters).
    title_key: Mapped[str] = mapped_column(Text().with_variant(Text(collation="C"), "postgresql"))
    description_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    priority: Mapped[int] = mapped_column(default=1)
    due_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)  # bumped by every write (crud.py); the ETag

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'in_progress', 'completed', 'cancelled')", name="status"),
        CheckConstraint("priority BETWEEN 1 AND 5", name="priority"),
        # One index per sort order a listing can ask for, each led by the owner.
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        Index("ix_tasks_owner_updated", "owner_id", "updated_at", "id"),
        Index("ix_tasks_owner_priority", "owner_id", "priority", "id"),
        Index("ix_tasks_owner_title", "owner_id", "title_key", "id"),
        Index("ix_tasks_owner_due", "owner_id", "due_date", "id"),
        # Tasks without a due date come last in both orders. SQLite reads the index above
        # either way; PostgreSQL reads it backwards only as DESC NULLS FIRST, so it gets a twin.
        Index("ix_tasks_owner_due_desc", "owner_id", text("due_date DESC NULLS LAST"), text("id DESC")).ddl_if(
            dialect="postgresql"
        ),
        Index("ix_tasks_owner_status_priority", "owner_id", "status", "priority", "created_at", "id"),
    )


class TaskCount(Base):
    """How many tasks each owner has per (status, priority), kept by crud.py in the same
    transaction as every write: a listing's `total` for these filters is then a sum of at most
    20 rows instead of a count(*) that grows with the table."""

    __tablename__ = "task_counts"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    priority: Mapped[int] = mapped_column(primary_key=True)
    tasks: Mapped[int]


class TaskTag(Base):
    __tablename__ = "task_tags"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(30))

    __table_args__ = (Index("ix_task_tags_tag", "tag", "task_id"),)


class IdempotencyKey(Base):
    """A POST /tasks answer remembered under its key, so a retry replays it."""

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
