"""Initial schema: users, tasks with tags and a version column, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 19:58:44.325044
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_users_and_keys()
    _create_tasks()
    _create_task_tags()


def _create_users_and_keys() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_idempotency_keys_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)


def _create_tasks() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "title_key",
            sa.Text().with_variant(sa.Text(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("description_key", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'cancelled')", name=op.f("ck_tasks_status")
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 5", name=op.f("ck_tasks_priority")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_tasks_owner_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_owner_created", "tasks", ["owner_id", "created_at", "id"], unique=False)
    op.create_index("ix_tasks_owner_due", "tasks", ["owner_id", "due_date", "id"], unique=False)
    op.create_index("ix_tasks_owner_priority", "tasks", ["owner_id", "priority", "id"], unique=False)
    op.create_index(
        "ix_tasks_owner_status_priority", "tasks", ["owner_id", "status", "priority", "created_at", "id"], unique=False
    )
    op.create_index("ix_tasks_owner_title", "tasks", ["owner_id", "title_key", "id"], unique=False)
    op.create_index("ix_tasks_owner_updated", "tasks", ["owner_id", "updated_at", "id"], unique=False)


def _create_task_tags() -> None:
    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_task_tags_task_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "position", name=op.f("pk_task_tags")),
    )
    op.create_index("ix_task_tags_tag", "task_tags", ["tag", "task_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_task_tags_tag", table_name="task_tags")

    op.drop_table("task_tags")
    op.drop_index("ix_tasks_owner_updated", table_name="tasks")
    op.drop_index("ix_tasks_owner_title", table_name="tasks")
    op.drop_index("ix_tasks_owner_status_priority", table_name="tasks")
    op.drop_index("ix_tasks_owner_priority", table_name="tasks")
    op.drop_index("ix_tasks_owner_due", table_name="tasks")
    op.drop_index("ix_tasks_owner_created", table_name="tasks")

    op.drop_table("tasks")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")

    op.drop_table("idempotency_keys")
    op.drop_table("users")
