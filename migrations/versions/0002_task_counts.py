"""Task counts per owner, status and priority, so a listing's total needs no count(*).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_task_counts_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", "status", "priority", name=op.f("pk_task_counts")),
    )
    op.execute(
        "INSERT INTO task_counts (owner_id, status, priority, tasks) "
        "SELECT owner_id, status, priority, count(*) FROM tasks GROUP BY owner_id, status, priority"
    )


def downgrade() -> None:
    op.drop_table("task_counts")
