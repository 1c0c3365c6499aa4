"""Admin routes (issue 2, point 3, admin part) on every backend; the startup admin is in test_settings."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from storage import Storage
from tests.conftest import ADMIN_EMAIL, Headers, MakeTask, MakeUser, login, make_settings, running

ADMIN_ROUTES = [("GET", "/admin/users"), ("DELETE", "/admin/tasks")]
API_KEY = "an-admin-api-key-for-the-tests-0123456789"
USER_FIELDS = {"id", "email", "is_admin", "created_at"}


def total_tasks(client: TestClient, headers: Headers) -> int:
    response = client.get("/tasks", headers=headers)
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


def test_admin_lists_every_user_without_secrets(client: TestClient, admin: Headers, user: Headers) -> None:
    me = client.get("/users/me", headers=user).json()
    response = client.get("/admin/users", headers=admin)
    assert response.status_code == 200
    users = response.json()
    assert all(set(listed) == USER_FIELDS for listed in users)
    assert "argon2" not in response.text
    by_email = {listed["email"]: listed for listed in users}
    assert set(by_email) == {ADMIN_EMAIL, me["email"]}
    assert by_email[me["email"]] == me
    assert by_email[ADMIN_EMAIL]["is_admin"] is True


def test_admin_deletes_every_task(
    client: TestClient, admin: Headers, user: Headers, make_user: MakeUser, make_task: MakeTask
) -> None:
    other = make_user()
    for headers in (user, user, other):
        make_task(headers=headers)
    response = client.delete("/admin/tasks", headers=admin)
    assert response.status_code == 200
    assert response.json() == {"deleted": 3}
    assert [total_tasks(client, headers) for headers in (user, other, admin)] == [0, 0, 0]
    assert client.delete("/admin/tasks", headers=admin).json() == {"deleted": 0}
    assert len(client.get("/admin/users", headers=admin).json()) == 3  # users are kept


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_anonymous_callers(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_ordinary_users(
    client: TestClient, user: Headers, make_task: MakeTask, method: str, path: str
) -> None:
    make_task()
    response = client.request(method, path, headers=user)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "This route is for administrators only"
    assert total_tasks(client, user) == 1  # nothing was deleted


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_api_key_is_refused_when_none_is_configured(client: TestClient, method: str, path: str) -> None:
    """Without ADMIN_API_KEY the header means nothing, whatever its value (even empty)."""
    for key in (API_KEY, ""):
        response = client.request(method, path, headers={"X-API-Key": key})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def keyed_client(storage: Storage) -> Iterator[TestClient]:
    with running(make_settings(admin_api_key=API_KEY), storage) as client:
        yield client


def test_configured_api_key_opens_the_admin_routes(keyed_client: TestClient) -> None:
    headers = {"X-API-Key": API_KEY}
    owner = keyed_client.post("/auth/register", json={"email": "keyed@example.com", "password": "keyed-password"})
    users = keyed_client.get("/admin/users", headers=headers)
    assert users.status_code == 200
    assert [listed["email"] for listed in users.json()] == [owner.json()["email"]]
    task_owner = login(keyed_client, "keyed@example.com", "keyed-password")
    assert keyed_client.post("/tasks", json={"title": "x"}, headers=task_owner).status_code == 201
    assert keyed_client.delete("/admin/tasks", headers=headers).json() == {"deleted": 1}
    assert total_tasks(keyed_client, task_owner) == 0


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "key", [API_KEY[:-1], API_KEY + "x", API_KEY.upper(), ""], ids=["short", "long", "case", "empty"]
)
def test_wrong_api_key_is_401(keyed_client: TestClient, method: str, path: str, key: str) -> None:
    response = keyed_client.request(method, path, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
