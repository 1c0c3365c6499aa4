from fastapi.testclient import TestClient

from tests.conftest import Headers, MakeTask


def test_create_and_read_back(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    task = make_task(title="  Write tests ", tags=["A", "a", "b"], priority=3)
    response = client.get(f"/tasks/{task['id']}", headers=user)
    assert response.status_code == 200
    assert response.json()["title"] == "Write tests"
    assert response.json()["tags"] == ["a", "b"]
    assert response.json()["created_at"].endswith("Z")
