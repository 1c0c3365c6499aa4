"""A deleted account loses access at once: the current user is read from storage on every request.

No route deletes an account, so these tests delete it behind the API's back, as an operator's
SQL would, and then look only at what the API answers.
"""

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from memory_store import MemoryStore
from models import User
from sql_store import SqlStore
from storage import Storage
from tests.conftest import Headers, MakeTask, assert_problem


def delete_user(storage: Storage, user_id: int) -> None:
    """Remove an account behind the API's back (no route deletes one), as an operator's SQL would."""
    if isinstance(storage, SqlStore):
        with storage.engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE id = :user_id"), {"user_id": user_id})
        return
    assert isinstance(storage, MemoryStore)
    credentials = storage._users.pop(user_id)
    del storage._user_id_by_email[credentials.user.email]


def assert_refused(response: Response) -> None:
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_deleted_account_gets_401_at_once(
    client: TestClient, storage: Storage, user: Headers, make_task: MakeTask
) -> None:
    me = client.get("/users/me", headers=user).json()
    task = make_task()
    delete_user(storage, me["id"])

    assert_refused(client.get("/users/me", headers=user))
    assert_refused(client.post("/tasks", json={"title": "Never stored"}, headers=user))
    assert_refused(client.get(f"/tasks/{task['id']}", headers=user))
    assert_refused(client.get("/tasks", headers=user))


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"], indirect=True)
def test_an_account_deleted_while_its_post_runs_gets_401_never_500(
    client: TestClient, storage: Storage, user: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token checks out, then the row goes before the insert: the foreign key refuses the
    task, and the caller is told their account is gone, as for a revoked token."""
    assert isinstance(storage, SqlStore)
    read_user = storage.get_user

    async def read_then_delete(user_id: int, token_key: str) -> User | None:
        found = await read_user(user_id, token_key)
        delete_user(storage, user_id)
        return found

    monkeypatch.setattr(storage, "get_user", read_then_delete)
    assert_refused(client.post("/tasks", json={"title": "Never stored"}, headers=user))
