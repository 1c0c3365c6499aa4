import pytest
from fastapi.testclient import TestClient
from tests.conftest import Headers


@pytest.mark.parametrize("n", range(5))
def test_x(client: TestClient, user: Headers, n: int) -> None:
    assert client.get("/tasks", headers=user).status_code == 200


@pytest.mark.parametrize("n", range(5))
def test_y(client: TestClient, n: int) -> None:
    assert client.get("/health").status_code == 200
