"""The exercise checks use the test suite's own fixtures: `client` is an app on a throwaway store
of each backend (memory, SQLite, and PostgreSQL when TEST_POSTGRES_URL is set), `user` and
`make_user` register through the API, `admin` is an admin's auth headers."""

import pytest

from tests.conftest import (
    admin,
    app,
    cheap_password_hashing,
    client,
    make_task,
    make_user,
    migrated_sqlite_file,
    postgres_engine,
    settings,
    sql_engine,
    storage,
    user,
)

__all__ = [
    "admin",
    "app",
    "cheap_password_hashing",
    "client",
    "make_task",
    "make_user",
    "migrated_sqlite_file",
    "postgres_engine",
    "settings",
    "sql_engine",
    "storage",
    "user",
]


def pytest_configure(config: pytest.Config) -> None:
    """Short failures without the captured request log: a learner reads the check's own message."""
    if config.option.tbstyle == "auto":
        config.option.tbstyle = "short"
    config.option.showcapture = "no"
