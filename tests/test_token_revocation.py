"""A token belongs to one account, once: it dies with the account, its password, and the store
it was issued from, and a later account that reuses the numeric id never inherits it."""

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_EMAIL, PASSWORD, Headers, assert_problem, login, make_settings, running


def register_and_login(client: TestClient, email: str) -> tuple[int, Headers]:
    response = client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()["id"], login(client, email)


def assert_revoked(client: TestClient, headers: Headers) -> None:
    response = client.get("/users/me", headers=headers)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_restarted_memory_store_honours_no_earlier_token() -> None:
    with running(make_settings()) as client:
        first_id, old_token = register_and_login(client, "before@example.com")
    with running(make_settings()) as client:  # the same SECRET_KEY, a new store
        second_id, new_token = register_and_login(client, "after@example.com")
        assert second_id == first_id, "the new account reuses the id"
        assert_revoked(client, old_token)
        assert client.get("/users/me", headers=new_token).json()["email"] == "after@example.com"
        assert_problem(client.get("/tasks", headers=old_token), 401)


def test_a_recreated_sqlite_file_honours_no_earlier_token(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'tasks.db'}")
    with running(settings) as client:
        first_id, old_token = register_and_login(client, "before@example.com")
    for leftover in tmp_path.glob("tasks.db*"):
        leftover.unlink()
    with running(settings) as client:
        second_id, _ = register_and_login(client, "after@example.com")
        assert second_id == first_id
        assert_revoked(client, old_token)


def test_a_new_admin_password_at_startup_revokes_the_admin_tokens(durable_url: str) -> None:
    admin = {"database_url": durable_url, "admin_email": ADMIN_EMAIL}
    with running(make_settings(**admin, admin_password="first-password")) as client:
        token = login(client, ADMIN_EMAIL, "first-password")
        assert client.get("/admin/users", headers=token).status_code == 200
    with running(make_settings(**admin, admin_password="first-password")) as client:
        assert client.get("/admin/users", headers=token).status_code == 200, "the same password keeps its tokens"
    with running(make_settings(**admin, admin_password="second-password")) as client:
        assert_revoked(client, token)
        assert client.get("/admin/users", headers=login(client, ADMIN_EMAIL, "second-password")).status_code == 200
