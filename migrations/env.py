"""Alembic environment: migrates DATABASE_URL, or the connection the app hands over.

The app passes its own connection (`config.attributes["connection"]`) so that SQLite
files are migrated at startup with the same engine settings the app uses. Either way the
migrations run in `database.migration_transaction`: on SQLite, with foreign keys off, so
rebuilding a table never deletes the rows that reference it.
"""

from alembic import context
from sqlalchemy import Connection

from database import create_db_engine, migration_transaction
from db_models import Base
from settings import Settings


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    settings = Settings()
    if settings.storage_kind == "memory":
        raise SystemExit("DATABASE_URL is 'memory': there is no database to migrate")
    engine = create_db_engine(settings.database_url, settings.storage_timeout_seconds)
    with migration_transaction(engine) as new_connection:
        run_migrations(new_connection)
    engine.dispose()
