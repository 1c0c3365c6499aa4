"""The workshop demo in a real browser: Swagger UI and ReDoc in Debian's headless Chromium.

The README's Swagger steps are followed click by click against a real `uvicorn main:app`
with its demo data, while every request to another host is aborted: the docs must work
offline, from the assets the app serves itself. Playwright drives /usr/bin/chromium; it
never downloads a browser (`playwright install` is not needed and must not be run).
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from demo_data import DEMO_TASKS
from tests.conftest import TEST_SECRET
from tests.live_server import ROOT, LiveServer, live_server

try:
    from playwright.sync_api import Browser, Page, Playwright, Request, Route, expect, sync_playwright
except ImportError:
    pytest.skip(
        "browser tests: the playwright package is not installed (pip install -r requirements-dev.txt)",
        allow_module_level=True,
    )

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests: Debian's Chromium is not at {CHROMIUM} (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 15_000
ALICE = ("alice@example.com", "alice-password")
ALICE_TITLES = {title for owner, title, *_ in DEMO_TASKS if owner == "alice"}
# ReDoc 2.x draws its "API docs by Redocly" logo from this CDN; offline, the image is simply missing.
REDOC_CDN = "cdn.redoc.ly"


@dataclass
class Traffic:
    """What the page asked for: requests aborted because they left the app, and failures."""

    app_netloc: str
    offsite: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    app_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        """The network cut: only the app itself is reachable."""
        if urlsplit(route.request.url).netloc == self.app_netloc:
            route.continue_()
        else:
            self.offsite.append(route.request.url)
            route.abort()

    def on_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def app_failures(self) -> list[str]:
        """Failed requests to the app, and app answers >= 400 (a missing asset, a broken call)."""
        return [f for f in self.failed if urlsplit(f.split(" ", 2)[1]).netloc == self.app_netloc] + self.app_errors

    def offsite_hosts(self) -> set[str]:
        return {urlsplit(url).netloc for url in self.offsite}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app as `make run` starts it: in-memory storage with the demo data."""
    env = {"DATABASE_URL": "memory", "DEMO_DATA": "true", "SECRET_KEY": TEST_SECRET}
    with live_server(env, tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[tuple[Page, Traffic]]:
    """A fresh page whose whole network is the app; everything it tried is in `Traffic`."""
    traffic = Traffic(urlsplit(server.base_url).netloc)
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/*", traffic.route)
    page.on("requestfailed", traffic.on_failed)
    page.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            traffic.app_errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and urlsplit(response.url).netloc == traffic.app_netloc
            else None
        ),
    )
    yield page, traffic
    context.close()


def execute(page: Page, operation_id: str, body: str | None = None) -> tuple[str, dict[str, object]]:
    """Open an operation, *Try it out*, optionally replace the body, *Execute*: (status shown, JSON shown)."""
    operation = page.locator(f"#operations-tasks-{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    if body is not None:
        operation.locator("textarea.body-param__text").fill(body)
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).not_to_be_empty(timeout=TIMEOUT_MS)
    status = response.locator(".response-col_status").inner_text().strip()
    shown: dict[str, object] = json.loads(response.locator(".response-col_description pre").first.inner_text())
    return status, shown


def authorize(browser_page: Page, email: str, password: str) -> None:
    """Swagger's Authorize dialog: fill in the OAuth2 password form, log in, close it."""
    browser_page.locator("button.authorize").first.click()
    dialog = browser_page.locator(".dialog-ux")
    dialog.locator("#oauth_username").fill(email)
    dialog.locator("#oauth_password").fill(password)
    with browser_page.expect_response(lambda response: response.url.endswith("/auth/token")) as login:
        dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    assert login.value.status == 200
    expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
    dialog.get_by_role("button", name="Close").first.click()
    expect(dialog).to_be_hidden()


def test_swagger_demo_runs_offline(page: tuple[Page, Traffic]) -> None:
    """The README's Swagger steps: Authorize as Alice, list her demo tasks (200), create one (201)."""
    browser_page, traffic = page
    browser_page.goto("/docs")
    authorize(browser_page, *ALICE)

    status, listing = execute(browser_page, "list_tasks_tasks_get")
    assert status == "200"
    items = listing["items"]
    assert isinstance(items, list)
    assert {item["title"] for item in items} == ALICE_TITLES  # hers, all of them, and nobody else's
    assert listing["total"] == len(ALICE_TITLES)

    title = f"Swagger demo {uuid.uuid4().hex[:8]}"
    status, created = execute(browser_page, "create_task_tasks_post", json.dumps({"title": title, "priority": 4}))
    assert status == "201"
    assert (created["title"], created["priority"], created["status"]) == (title, 4, "pending")
    assert created["owner_id"] == items[0]["owner_id"]

    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=ARTIFACTS / "swagger-demo.png", full_page=True)

    # Read back through the same page: the new task heads Alice's list.
    listing_again = browser_page.locator("#operations-tasks-list_tasks_tasks_get")
    with browser_page.expect_response(lambda response: "/tasks?" in response.url or response.url.endswith("/tasks")):
        listing_again.get_by_role("button", name="Execute").click()
    expect(listing_again.locator(".live-responses-table .response-col_description pre").first).to_contain_text(title)

    assert traffic.offsite == [], "Swagger UI must not reach beyond the app"
    assert traffic.app_failures() == []
    assert traffic.page_errors == []


def test_redoc_renders_offline(page: tuple[Page, Traffic]) -> None:
    """ReDoc draws the schema from local assets; only its CDN logo is (harmlessly) cut off."""
    browser_page, traffic = page
    browser_page.goto("/redoc")

    expect(browser_page.get_by_role("heading", name="Tasks API (1.0.0)")).to_be_visible()
    expect(browser_page.get_by_role("heading", name="List Tasks")).to_be_visible()
    expect(browser_page.get_by_role("heading", name="Create Task")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=ARTIFACTS / "redoc.png")

    assert traffic.offsite_hosts() <= {REDOC_CDN}, traffic.offsite
    assert traffic.app_failures() == []
    assert traffic.page_errors == []
