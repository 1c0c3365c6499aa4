"""users.token_key: a random key per account that its tokens carry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:30:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table("users", sa.column("id", sa.Integer), sa.column("token_key", sa.String))


def upgrade() -> None:
    op.add_column("users", sa.Column("token_key", sa.String(length=64), nullable=True))
    # Every existing account gets its own key; tokens issued before this migration stop working.
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        key = secrets.token_urlsafe(16)
        connection.execute(users.update().where(users.c.id == user_id).values(token_key=key))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("token_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_key")
