"""Offline docs: /docs and /redoc load every asset from the app itself, and Swagger's Authorize works.

A workshop room without internet must still get working docs, so the pages may reference no
remote script, stylesheet or font, and every local asset they name must answer.
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PASSWORD

REMOTE = re.compile(r"(https?:)?//[^\s'\"]")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class References(HTMLParser):
    """Collects every `src` and `href` an HTML page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "bundle"), [("/docs", "/static/swagger-ui-bundle.js"), ("/redoc", "/static/redoc.standalone.js")]
)
def test_docs_pages_load_only_local_assets(client: TestClient, page: str, bundle: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not REMOTE.search(response.text), REMOTE.findall(response.text)
    urls = references(response.text)
    assert bundle in urls
    for url in urls:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert CONTENT_TYPES[Path(url).suffix] in asset.headers["content-type"], url
        assert len(asset.content) > 0
    assert "/openapi.json" in response.text
    assert client.get("/openapi.json").status_code == 200


def test_every_vendored_asset_ships_with_its_licence() -> None:
    names = {path.name for path in STATIC_DIR.iterdir()}
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"} <= names
    assert {"LICENSE-swagger-ui", "LICENSE-redoc"} <= names


def test_favicon_and_oauth2_redirect_page_are_served(client: TestClient) -> None:
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200
    assert favicon.headers["content-type"].startswith("image/")
    docs = client.get("/docs").text
    redirect_url = re.search(r"oauth2RedirectUrl: window\.location\.origin \+ '([^']+)'", docs)
    assert redirect_url is not None, "Swagger UI needs a local OAuth2 redirect page"
    redirect = client.get(redirect_url[1])
    assert redirect.status_code == 200
    assert redirect.headers["content-type"].startswith("text/html")
    assert "oauth2" in redirect.text.lower()
    assert not REMOTE.search(redirect.text)


def test_swaggers_authorize_uses_the_password_flow_at_auth_token(client: TestClient) -> None:
    """The schema's OAuth2 scheme points at /auth/token, and that route takes the form Swagger sends."""
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    (name,) = [name for name, scheme in schemes.items() if scheme["type"] == "oauth2"]
    assert schemes[name]["flows"] == {"password": {"scopes": {}, "tokenUrl": "/auth/token"}}
    assert {name: []} in schema["paths"]["/tasks"]["get"]["security"]
    form = schema["paths"]["/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form

    email = "swagger@example.com"
    assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    # Exactly the fields Swagger UI's password flow posts (no client id configured).
    token = client.post(
        "/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD, "scope": ""},
        headers={"Accept": "application/json, text/plain, */*", "X-Requested-With": "XMLHttpRequest"},
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    me = client.get("/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["email"] == email
