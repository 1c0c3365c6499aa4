"""What the app does as it starts: open the storage DATABASE_URL names, and seed it.

`main.lifespan` calls these once per worker, before the first request.
"""

import logging
import sys
from contextlib import suppress

from auth import hash_password, verify_password
from database import create_db_engine, schema_is_current, upgrade_to_head
from demo_data import load_demo_data
from memory_store import MemoryStore
from settings import Settings
from sql_store import SqlStore
from storage import EmailTaken, Storage


def open_storage(settings: Settings) -> Storage:
    """The backend DATABASE_URL names: the dict store, or SQL (`sql_store.py` over the queries in `crud.py`)."""
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
