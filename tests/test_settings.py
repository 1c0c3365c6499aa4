"""Configuration (issue 2, point 6) and what it seeds at startup: demo data (point 8) and the configured admin.

Also home to the small helpers other test modules use to build an app with non-default
settings: `make_settings` and `running`.
"""

import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from main import create_app
from settings import Settings
from tests.conftest import TEST_SECRET, Headers, login, make_settings, running

DEMO_ADMIN = ("admin@example.com", "admin-password")
DEMO_ALICE = ("alice@example.com", "alice-password")
DEMO_BOB = ("bob@example.com", "bob-password")
DEMO_TASK_COUNT = 12
SETTINGS_VARIABLES = (
    "DATABASE_URL",
    "APP_ENV",
    "SECRET_KEY",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "ADMIN_API_KEY",
    "DEMO_DATA",
    "CORS_ORIGINS",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No configuration from the developer's shell or a `.env` file leaks into a test."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# --- SECRET_KEY and other values ---------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"app_env": "production"}, "SECRET_KEY"),
        ({"app_env": "production", "secret_key": "x" * 31}, "SECRET_KEY"),
        ({"app_env": "production", "secret_key": "é" * 15}, "SECRET_KEY"),  # 15 characters, 30 bytes
        ({"database_url": "mysql://localhost/tasks"}, "DATABASE_URL"),
        ({"access_token_expire_minutes": 0}, "access_token_expire_minutes"),
        ({"app_env": "staging"}, "app_env"),
    ],
    ids=["prod-default-key", "prod-31-byte-key", "prod-30-byte-unicode-key", "unknown-db", "zero-lifetime", "bad-env"],
)
def test_unsafe_or_invalid_settings_are_refused(
    clean_env: pytest.MonkeyPatch, values: dict[str, Any], message: str
) -> None:
    """A misconfigured service must fail at startup with a message naming the setting, not run unsafely."""
    with pytest.raises(ValidationError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Settings(_env_file=None, **values)


@pytest.mark.parametrize("secret_key", [None, "too-short"], ids=["default-key", "short-key"])
def test_production_app_refuses_to_start_from_the_environment(
    clean_env: pytest.MonkeyPatch, secret_key: str | None
) -> None:
    """The real entry point (`create_app()` reading the environment) refuses, not just the class."""
    clean_env.setenv("APP_ENV", "production")
    if secret_key is not None:
        clean_env.setenv("SECRET_KEY", secret_key)
    with pytest.raises(ValidationError, match="SECRET_KEY must be set to a random value of at least 32 bytes"):
        create_app()


def test_production_accepts_a_long_random_key_without_warning(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENV", "production")
    clean_env.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = Settings(_env_file=None)
    assert settings.app_env == "production"
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200


def test_development_default_key_warns(clean_env: pytest.MonkeyPatch) -> None:
    """Development may run on the built-in key, but says so."""
    with pytest.warns(UserWarning, match="SECRET_KEY is the development default"):
        settings = Settings(_env_file=None)
    assert settings.app_env == "development"


def test_settings_are_read_from_a_dotenv_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`.env` in the working directory configures the app like the environment does."""
    (tmp_path / ".env").write_text(f"SECRET_KEY={TEST_SECRET}\nACCESS_TOKEN_EXPIRE_MINUTES=7\nDEMO_DATA=false\n")
    settings = Settings()
    assert (settings.secret_key, settings.access_token_expire_minutes, settings.demo_data) == (TEST_SECRET, 7, False)


# --- DEMO_DATA ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_env", "demo_data", "loaded"),
    [
        ("development", None, True),
        ("production", None, False),
        ("development", "false", False),
        ("production", "true", True),
    ],
)
def test_demo_data_default_follows_app_env(
    clean_env: pytest.MonkeyPatch, app_env: str, demo_data: str | None, loaded: bool
) -> None:
    """DEMO_DATA defaults to on in development and off in production; an explicit value wins."""
    clean_env.setenv("APP_ENV", app_env)
    clean_env.setenv("SECRET_KEY", TEST_SECRET)
    if demo_data is not None:
        clean_env.setenv("DEMO_DATA", demo_data)
    with TestClient(create_app()) as client:
        response = client.post("/auth/token", data={"username": DEMO_ALICE[0], "password": DEMO_ALICE[1]})
    assert response.status_code == (200 if loaded else 401)


def test_demo_data_has_users_and_tasks(database_url: str) -> None:
    """The first visit to /docs has something to show: three logins, a dozen tasks, per-user ownership."""
    with running(make_settings(database_url=database_url, demo_data=True)) as client:
        admin = login(client, *DEMO_ADMIN)
        users = client.get("/admin/users", headers=admin).json()
        assert sorted(user["email"] for user in users) == sorted(e for e, _ in (DEMO_ADMIN, DEMO_ALICE, DEMO_BOB))
        assert [user["email"] for user in users if user["is_admin"]] == [DEMO_ADMIN[0]]
        everything = client.get("/tasks", params={"limit": 100}, headers=admin).json()
        assert everything["total"] >= DEMO_TASK_COUNT
        assert len({task["status"] for task in everything["items"]}) == 4  # varied enough to filter on
        owners = {task["owner_id"] for task in everything["items"]}
        for email, password in (DEMO_ALICE, DEMO_BOB):
            headers = login(client, email, password)
            me = client.get("/users/me", headers=headers).json()
            own = client.get("/tasks", params={"limit": 100}, headers=headers).json()
            assert 0 < own["total"] < everything["total"]
            assert {task["owner_id"] for task in own["items"]} == {me["id"]}
            owners.discard(me["id"])
        assert owners == set()  # every demo task belongs to alice or bob


def test_without_demo_data_the_store_starts_empty(database_url: str) -> None:
    """DEMO_DATA=false: the only account is the configured admin, and there are no tasks."""
    settings = make_settings(
        database_url=database_url, demo_data=False, admin_email="ops@example.com", admin_password="ops-password"
    )
    with running(settings) as client:
        assert (
            client.post("/auth/token", data={"username": DEMO_ALICE[0], "password": DEMO_ALICE[1]}).status_code == 401
        )
        admin = login(client, "ops@example.com", "ops-password")
        assert [user["email"] for user in client.get("/admin/users", headers=admin).json()] == ["ops@example.com"]
        assert client.get("/tasks", headers=admin).json()["total"] == 0


def _restart(url: str, action: Callable[[TestClient], None], **overrides: Any) -> None:
    with running(make_settings(database_url=url, **overrides)) as client:
        action(client)


def test_demo_data_is_not_loaded_into_a_store_with_users(durable_url: str) -> None:
    """A database that already has users is somebody's data: demo rows are never mixed into it."""

    def register(client: TestClient) -> None:
        body = {"email": "carol@example.com", "password": "carol-password"}
        assert client.post("/auth/register", json=body).status_code == 201

    def check(client: TestClient) -> None:
        assert (
            client.post("/auth/token", data={"username": DEMO_ALICE[0], "password": DEMO_ALICE[1]}).status_code == 401
        )
        admin = login(client, "ops@example.com", "ops-password")
        emails = {user["email"] for user in client.get("/admin/users", headers=admin).json()}
        assert emails == {"carol@example.com", "ops@example.com"}
        assert client.get("/tasks", headers=admin).json()["total"] == 0

    _restart(durable_url, register, demo_data=False)
    _restart(durable_url, check, demo_data=True, admin_email="ops@example.com", admin_password="ops-password")


def test_restart_does_not_load_demo_data_twice(durable_url: str) -> None:
    """Seeding is once per database, not once per start."""
    counts: list[tuple[int, int]] = []

    def count(client: TestClient) -> None:
        admin: Headers = login(client, *DEMO_ADMIN)
        users = client.get("/admin/users", headers=admin).json()
        counts.append((len(users), client.get("/tasks", headers=admin).json()["total"]))

    _restart(durable_url, count, demo_data=True)
    _restart(durable_url, count, demo_data=True)
    assert counts[0] == counts[1]
    assert counts[0][0] == 3


# --- ADMIN_EMAIL / ADMIN_PASSWORD (seeded into the app's own store, no get_db override) ---


def test_configured_admin_is_created_at_startup(database_url: str) -> None:
    """Admins never come from the public API, so configuration must be able to make one."""
    settings = make_settings(database_url=database_url, admin_email="Boss@Example.com", admin_password="boss-password")
    with running(settings) as client:
        headers = login(client, "boss@example.com", "boss-password")
        me = client.get("/users/me", headers=headers).json()
        assert (me["email"], me["is_admin"]) == ("boss@example.com", True)
        assert client.get("/admin/users", headers=headers).json() == [me]


def test_configured_admin_promotes_an_existing_user(database_url: str) -> None:
    """An existing account (here a demo user) becomes the admin: promoted, not duplicated."""
    settings = make_settings(
        database_url=database_url, demo_data=True, admin_email="Alice@Example.com", admin_password="now-an-admin"
    )
    with running(settings) as client:
        headers = login(client, DEMO_ALICE[0], "now-an-admin")
        assert client.get("/users/me", headers=headers).json()["is_admin"] is True
        users = client.get("/admin/users", headers=headers).json()
        assert [listed["email"] for listed in users].count(DEMO_ALICE[0]) == 1
        assert len(users) == 3
        everyone = client.get("/tasks", headers=headers).json()["total"]
        assert everyone >= DEMO_TASK_COUNT  # an admin sees every user's tasks


def test_configured_admin_promotes_a_registered_user_after_restart(durable_url: str) -> None:
    """The documented way to make the first admin of a real database: restart with ADMIN_EMAIL set."""
    with running(make_settings(database_url=durable_url)) as client:
        registered = client.post("/auth/register", json={"email": "carol@example.com", "password": "carol-password"})
        assert registered.status_code == 201
        carol = login(client, "carol@example.com", "carol-password")
        assert client.get("/admin/users", headers=carol).status_code == 403
    settings = make_settings(database_url=durable_url, admin_email="carol@example.com", admin_password="carol-admin")
    with running(settings) as client:
        headers = login(client, "carol@example.com", "carol-admin")
        assert client.get("/admin/users", headers=headers).json() == [{**registered.json(), "is_admin": True}]


# --- CORS_ORIGINS ------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("https://app.example.com", True), ("http://localhost:8080", True), ("https://evil.example.com", False)],
)
def test_cors_origins_is_a_comma_separated_list(origin: str, allowed: bool) -> None:
    """Spaces and empty items in CORS_ORIGINS are ignored; only the listed origins are allowed."""
    settings = make_settings(cors_origins=" https://app.example.com , ,http://localhost:8080,")
    assert settings.cors_origin_list == ["https://app.example.com", "http://localhost:8080"]
    with running(settings) as client:
        response = client.get("/health", headers={"Origin": origin})
    assert response.headers.get("access-control-allow-origin") == (origin if allowed else None)


def test_cors_origins_default(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, secret_key=TEST_SECRET)
    assert settings.cors_origin_list == ["http://localhost:3000", "http://localhost:5173"]


def test_database_url_selects_the_backend(database_url: str) -> None:
    """DATABASE_URL alone picks the store the app opens, and /ready reports which one it is."""
    kind = "memory" if database_url == "memory" else database_url.split(":")[0].split("+")[0]
    with running(make_settings(database_url=database_url)) as client:
        assert client.get("/ready").json() == {"status": "ready", "storage": kind}
