"""Service routes (issue 2, point 7): `/`, `/health` and `/ready` need no login and answer on every backend."""

import pytest
from fastapi.testclient import TestClient


def test_root_describes_the_service(client: TestClient) -> None:
    """Exactly the contract's keys; name and version agree with the OpenAPI document."""
    response = client.get("/")
    assert response.status_code == 200
    info = client.get("/openapi.json").json()["info"]
    assert response.json() == {
        "name": info["title"],
        "version": info["version"],
        "docs": "/docs",
        "redoc": "/redoc",
        "health": "/health",
    }
    assert info["title"] and info["version"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/health"])
def test_root_links_resolve(client: TestClient, path: str) -> None:
    """Every link `/` advertises answers 200, so a learner can follow them."""
    assert path in client.get("/").json().values()
    assert client.get(path).status_code == 200


def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_names_the_storage_backend(client: TestClient, request: pytest.FixtureRequest) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "storage": request.node.callspec.params["storage"]}


@pytest.mark.parametrize("path", ["/", "/health", "/ready"])
def test_service_routes_ignore_a_bad_token(client: TestClient, path: str) -> None:
    """No auth on these routes: even a garbage Authorization header does not turn them into a 401."""
    assert client.get(path, headers={"Authorization": "Bearer garbage"}).status_code == 200
