"""PostgreSQL: an index for due_date DESC NULLS LAST, so that sort needs no sort step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite reads ix_tasks_owner_due backwards
        op.create_index(
            "ix_tasks_owner_due_desc",
            "tasks",
            ["owner_id", sa.text("due_date DESC NULLS LAST"), sa.text("id DESC")],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_owner_due_desc", table_name="tasks")
