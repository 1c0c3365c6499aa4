"""GET /tasks on every backend: filters, sorting, offset and cursor paging, and the paging headers.

Expected orders are written out by hand from the contract, not computed by a copy of the
app's own sort, so a backend that sorts differently fails here.
"""

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import Headers, MakeTask, assert_invalid, assert_problem

Params = dict[str, Any]
LINK = re.compile(r'<([^>]*)>;\s*rel="([^"]+)"')


def get_page(client: TestClient, headers: Headers, params: Params) -> Response:
    """One listing page, checked for the invariants every page shares."""
    response = client.get("/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset", "next_cursor"}
    assert response.headers["x-total-count"] == str(page["total"])
    assert len(page["items"]) <= page["limit"] == params.get("limit", 20)
    assert ("next" in links(response)) == (page["next_cursor"] is not None)
    assert "first" in links(response)
    return response


def links(response: Response) -> dict[str, str]:
    """The RFC 8288 `Link` header as {rel: target}."""
    return {rel: target for target, rel in LINK.findall(response.headers.get("link", ""))}


def ids(response: Response) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


def walk_cursor(client: TestClient, headers: Headers, params: Params) -> list[int]:
    """Follow `next_cursor` from the first page to the last; every page but the last is full."""
    response = get_page(client, headers, params)
    total, seen = response.json()["total"], ids(response)
    for _ in range(200):
        page = response.json()
        if page["next_cursor"] is None:
            return seen
        assert len(page["items"]) == params["limit"]
        response = get_page(client, headers, {**params, "cursor": page["next_cursor"]})
        assert response.json()["offset"] == 0
        assert response.json()["total"] == total
        seen += ids(response)
    raise AssertionError("the cursor walk never reached a last page")


def walk_offset(client: TestClient, headers: Headers, params: Params) -> list[int]:
    seen: list[int] = []
    for offset in range(0, 200, params["limit"]):
        response = get_page(client, headers, {**params, "offset": offset})
        assert response.json()["offset"] == offset
        if not response.json()["items"]:
            return seen
        seen += ids(response)
    raise AssertionError("the offset walk never ended")


def walk_links(client: TestClient, headers: Headers, params: Params) -> list[int]:
    """Follow `Link: rel="next"` as a client would, keeping nothing but the URL."""
    response, seen = get_page(client, headers, params), []
    for _ in range(200):
        seen += ids(response)
        target = links(response).get("next")
        if target is None:
            return seen
        assert urlsplit(target).path == "/tasks"
        response = client.get(target, headers=headers)
        assert response.status_code == 200, response.text
    raise AssertionError("the Link walk never ended")


# --- filters -----------------------------------------------------------------

FILTER_SEED: list[dict[str, Any]] = [
    {"title": "Buy milk", "priority": 2, "due_date": "2026-03-01", "tags": ["home", "shopping"]},
    {
        "title": "File taxes",
        "description": "Before the DEADLINE",
        "status": "in_progress",
        "priority": 5,
        "due_date": "2026-04-15",
        "tags": ["admin"],
    },
    {"title": "Plan trip", "description": "Résumé de l'été", "status": "completed", "priority": 3, "tags": ["home"]},
    {"title": "100% done_ish \\o/", "status": "cancelled", "priority": 2, "due_date": "2026-03-31", "tags": ["Work"]},
    {
        "title": "Write report",
        "description": "fifty percent",
        "priority": 4,
        "due_date": "2026-03-01",
        "tags": ["work", "home"],
    },
    {"title": "Call mom", "priority": 1},
]
EVERY_TITLE = {task["title"] for task in FILTER_SEED}


@pytest.mark.parametrize(
    ("params", "titles"),
    [
        pytest.param({}, EVERY_TITLE, id="no-filter"),
        pytest.param({"status": "pending"}, {"Buy milk", "Write report", "Call mom"}, id="status"),
        pytest.param(
            {"status": ["pending", "completed"]},
            {"Buy milk", "Write report", "Call mom", "Plan trip"},
            id="status-either",
        ),
        pytest.param({"priority": 2}, {"Buy milk", "100% done_ish \\o/"}, id="priority"),
        pytest.param({"tag": "home"}, {"Buy milk", "Plan trip", "Write report"}, id="tag"),
        pytest.param({"tag": " HOME "}, {"Buy milk", "Plan trip", "Write report"}, id="tag-normalised"),
        pytest.param({"tag": ["home", "work"]}, {"Write report"}, id="tags-all-required"),
        pytest.param({"tag": ["home", "nowhere"]}, set(), id="tags-one-missing"),
        pytest.param({"tag": ["home", " HOME", "work"]}, {"Write report"}, id="tags-repeated"),
        pytest.param({"tag": "work"}, {"100% done_ish \\o/", "Write report"}, id="tag-stored-lower-cased"),
        pytest.param({"q": "MILK"}, {"Buy milk"}, id="q-title-any-case"),
        pytest.param({"q": "deadline"}, {"File taxes"}, id="q-description-any-case"),
        pytest.param({"q": "ÉTÉ"}, {"Plan trip"}, id="q-non-ascii-case"),
        pytest.param({"q": "%"}, {"100% done_ish \\o/"}, id="q-percent-literal"),
        pytest.param({"q": "_"}, {"100% done_ish \\o/"}, id="q-underscore-literal"),
        pytest.param({"q": "\\"}, {"100% done_ish \\o/"}, id="q-backslash-literal"),
        pytest.param({"q": "nothing like it"}, set(), id="q-no-match"),
        pytest.param({"due_before": "2026-03-01"}, {"Buy milk", "Write report"}, id="due_before-inclusive"),
        pytest.param({"due_after": "2026-03-31"}, {"100% done_ish \\o/", "File taxes"}, id="due_after-inclusive"),
        pytest.param(
            {"due_after": "2026-03-01", "due_before": "2026-03-31"},
            {"Buy milk", "Write report", "100% done_ish \\o/"},
            id="due-range",
        ),
        pytest.param({"due_before": "2100-01-01"}, EVERY_TITLE - {"Plan trip", "Call mom"}, id="undated-never-match"),
        pytest.param({"status": "pending", "tag": "home", "priority": 4, "q": "report"}, {"Write report"}, id="all"),
    ],
)
def test_filters_select_exactly_the_matching_tasks(
    client: TestClient, user: Headers, make_task: MakeTask, params: Params, titles: set[str]
) -> None:
    ids_by_title = {fields["title"]: make_task(**fields)["id"] for fields in FILTER_SEED}
    response = get_page(client, user, params)
    assert set(ids(response)) == {ids_by_title[title] for title in titles}
    assert response.json()["total"] == len(titles)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": ["pending", "bogus"]}, "status"),
        ({"priority": 9}, "priority"),
        ({"priority": 0}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"tag": "   "}, "tag"),
        ({"tag": "x" * 31}, "tag"),
        ({"q": ""}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"due_before": "2026-13-01"}, "due_before"),
        ({"due_after": "tomorrow"}, "due_after"),
        ({"sort_by": "bogus"}, "sort_by"),
        ({"sort_by": "owner_id"}, "sort_by"),
        ({"order": "sideways"}, "order"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"cursor": ""}, "cursor"),
    ],
)
def test_invalid_listing_parameter_is_422(client: TestClient, user: Headers, params: Params, name: str) -> None:
    assert_invalid(client.get("/tasks", params=params, headers=user), ["query", name])


def test_edge_limits_are_accepted(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    for _ in range(3):
        make_task()
    assert len(ids(get_page(client, user, {"limit": 1}))) == 1
    assert len(ids(get_page(client, user, {"limit": 100, "offset": 0}))) == 3


# --- sorting and walking -----------------------------------------------------

# Created in this order (so ids ascend down the list); then "cherry" and "banana" are
# updated, in that order. Ties: three at priority 3, "Apple"/"apple", two due 2026-05-01, two undated.
SORT_SEED: list[dict[str, Any]] = [
    {"title": "banana", "priority": 3, "due_date": "2026-05-01"},
    {"title": "Apple", "priority": 5, "status": "in_progress"},
    {"title": "cherry", "priority": 3, "due_date": "2026-04-01"},
    {"title": "apple", "priority": 1, "due_date": "2026-05-01"},
    {"title": "Date", "priority": 3},
]
ASCENDING = {
    "created_at": ["banana", "Apple", "cherry", "apple", "Date"],
    "updated_at": ["Apple", "apple", "Date", "cherry", "banana"],
    "priority": ["apple", "banana", "cherry", "Date", "Apple"],
    "title": ["Apple", "apple", "banana", "cherry", "Date"],  # case-insensitive, then by id
    "due_date": ["cherry", "banana", "apple", "Apple", "Date"],  # undated last
}
DESCENDING = {
    "created_at": ["Date", "apple", "cherry", "Apple", "banana"],
    "updated_at": ["banana", "cherry", "Date", "apple", "Apple"],
    "priority": ["Apple", "Date", "cherry", "banana", "apple"],
    "title": ["Date", "cherry", "banana", "apple", "Apple"],
    "due_date": ["apple", "banana", "cherry", "Date", "Apple"],  # undated still last, ids descending
}
SORTS = [
    pytest.param(sort_by, order, expected, id=f"{sort_by}-{order}")
    for order, table in (("asc", ASCENDING), ("desc", DESCENDING))
    for sort_by, expected in table.items()
]


def make_sort_seed(client: TestClient, user: Headers, make_task: MakeTask) -> dict[str, int]:
    ids_by_title = {fields["title"]: make_task(**fields)["id"] for fields in SORT_SEED}
    for title in ("cherry", "banana"):
        response = client.patch(f"/tasks/{ids_by_title[title]}", json={"description": "touched"}, headers=user)
        assert response.status_code == 200, response.text
    return ids_by_title


@pytest.mark.parametrize(("sort_by", "order", "expected"), SORTS)
def test_sorting_and_every_way_of_paging_agree(
    client: TestClient, user: Headers, make_task: MakeTask, sort_by: str, order: str, expected: list[str]
) -> None:
    """One big page has the contract's order; cursor, offset and Link walks visit it exactly, page by page."""
    ids_by_title = make_sort_seed(client, user, make_task)
    in_order = [ids_by_title[title] for title in expected]
    params: Params = {"sort_by": sort_by, "order": order}
    assert ids(get_page(client, user, {**params, "limit": 100})) == in_order
    for limit in (1, 2):
        assert walk_cursor(client, user, {**params, "limit": limit}) == in_order
    assert walk_offset(client, user, {**params, "limit": 2}) == in_order
    assert walk_links(client, user, {**params, "limit": 2}) == in_order

    # With a filter that drops "Apple", and with 4 matches, so the last page is exactly full.
    filtered = {**params, "status": "pending", "limit": 2}
    in_filtered_order = [task_id for task_id in in_order if task_id != ids_by_title["Apple"]]
    assert walk_cursor(client, user, filtered) == in_filtered_order
    assert walk_links(client, user, filtered) == in_filtered_order


def test_default_sort_is_newest_first(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    ids_by_title = make_sort_seed(client, user, make_task)
    assert ids(get_page(client, user, {})) == [ids_by_title[title] for title in DESCENDING["created_at"]]


@pytest.mark.parametrize(
    ("sort_by", "order"), [("created_at", "desc"), ("created_at", "asc"), ("priority", "desc"), ("title", "asc")]
)
def test_cursor_walk_survives_tasks_created_between_pages(
    client: TestClient, user: Headers, make_task: MakeTask, sort_by: str, order: str
) -> None:
    """Keyset paging: new tasks never shift the walk, so no original task is skipped or repeated."""
    originals = [make_task(title=f"task {n}", priority=n % 5 + 1)["id"] for n in range(7)]
    params: Params = {"sort_by": sort_by, "order": order, "limit": 2}
    response, seen = get_page(client, user, params), []
    for n in range(20):
        seen += ids(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        make_task(title=f"new task {n}", priority=n % 5 + 1)
        response = get_page(client, user, {**params, "cursor": cursor})
    assert len(seen) == len(set(seen))
    assert sorted(task_id for task_id in seen if task_id in originals) == originals


def test_totals_follow_every_change_of_status_and_priority(
    client: TestClient, user: Headers, make_user: Any, admin: Headers, make_task: MakeTask
) -> None:
    """`total` for status and priority filters stays exact through every kind of write, by the
    owner and by an admin, with another user's tasks beside them (SQL reads these from counts)."""

    def totals(headers: Headers) -> list[int]:
        filters: list[Params] = [{}, {"status": "pending"}, {"status": ["pending", "completed"]}, {"priority": 4}]
        filters.append({"status": "completed", "priority": 4})
        return [get_page(client, headers, params).json()["total"] for params in filters]

    other = make_user()
    make_task(headers=other, status="completed", priority=4)
    first, second, third = (make_task(priority=4)["id"] for _ in range(3))
    assert totals(user) == [3, 3, 3, 3, 0]
    assert client.patch(f"/tasks/{first}", json={"status": "completed"}, headers=user).status_code == 200
    assert totals(user) == [3, 2, 3, 3, 1]
    assert client.put(f"/tasks/{second}", json={"title": "Replaced"}, headers=user).status_code == 200
    assert totals(user) == [3, 2, 3, 2, 1]
    assert (
        client.patch(f"/tasks/{third}", json={"priority": 1, "status": "cancelled"}, headers=admin).status_code == 200
    )
    assert totals(user) == [3, 1, 2, 1, 1]
    assert client.patch(f"/tasks/{third}", json={"title": "Same status and priority"}, headers=user).status_code == 200
    assert totals(user) == [3, 1, 2, 1, 1]
    assert client.delete(f"/tasks/{first}", headers=admin).status_code == 204
    assert totals(user) == [2, 1, 1, 0, 0]
    assert totals(other) == [1, 0, 1, 1, 1]
    assert totals(admin) == [3, 1, 2, 1, 1]
    assert client.delete("/admin/tasks", headers=admin).status_code == 200
    make_task(priority=4)
    assert totals(user) == [1, 1, 1, 1, 0]
    assert totals(admin) == [1, 1, 1, 1, 0]


# --- paging details ----------------------------------------------------------


def test_offset_paging_reports_total_and_links(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    created = [make_task(title=f"task {n}")["id"] for n in range(5)]
    newest_first = created[::-1]

    first = get_page(client, user, {"limit": 2})
    assert first.json()["items"][0]["id"] == newest_first[0]
    assert {key: first.json()[key] for key in ("total", "limit", "offset")} == {"total": 5, "limit": 2, "offset": 0}
    assert first.json()["next_cursor"] is not None
    assert ids(client.get(links(first)["first"], headers=user)) == newest_first[:2]

    middle = get_page(client, user, {"limit": 2, "offset": 2})
    assert ids(middle) == newest_first[2:4]
    assert middle.json()["offset"] == 2
    assert ids(client.get(links(middle)["next"], headers=user)) == newest_first[4:]
    assert ids(get_page(client, user, {"limit": 2, "cursor": middle.json()["next_cursor"]})) == newest_first[4:]

    last = get_page(client, user, {"limit": 2, "offset": 4})
    assert ids(last) == newest_first[4:]
    assert last.json()["next_cursor"] is None
    assert set(links(last)) == {"first"}

    beyond = get_page(client, user, {"limit": 2, "offset": 50})
    assert ids(beyond) == []
    assert beyond.json()["total"] == 5


def test_empty_listing(client: TestClient, user: Headers) -> None:
    page = get_page(client, user, {})
    assert page.json() == {"items": [], "total": 0, "limit": 20, "offset": 0, "next_cursor": None}
    assert set(links(page)) == {"first"}


# --- cursor abuse ------------------------------------------------------------


def a_cursor(client: TestClient, user: Headers, make_task: MakeTask, params: Params) -> str:
    for n in range(3):
        make_task(title=f"task {n}", priority=n + 1)
    cursor: str = get_page(client, user, {**params, "limit": 1}).json()["next_cursor"]
    assert cursor
    return cursor


def flip(text: str, index: int) -> str:
    """`text` with one base64url character changed to another."""
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def test_cursor_and_offset_together_is_422(client: TestClient, user: Headers, make_task: MakeTask) -> None:
    cursor = a_cursor(client, user, make_task, {})
    assert_problem(client.get("/tasks", params={"cursor": cursor, "offset": 0, "limit": 1}, headers=user), 422)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda cursor: "garbage", id="no-dot"),
        pytest.param(lambda cursor: "a.b.c", id="three-parts"),
        pytest.param(lambda cursor: "!!!.???", id="not-base64"),
        pytest.param(lambda cursor: "é.é", id="not-ascii"),
        pytest.param(lambda cursor: cursor.split(".")[0], id="signature-dropped"),
        pytest.param(lambda cursor: flip(cursor, 0), id="payload-flipped"),
        pytest.param(lambda cursor: flip(cursor, cursor.index(".") // 2), id="payload-middle-flipped"),
        pytest.param(lambda cursor: flip(cursor, cursor.index(".") + 1), id="signature-flipped"),
        pytest.param(lambda cursor: cursor + "AAAA", id="extended"),
        pytest.param(lambda cursor: "W1siYSJdXQ." + cursor.split(".")[1], id="payload-swapped"),
    ],
)
def test_malformed_or_tampered_cursor_is_422(
    client: TestClient, user: Headers, make_task: MakeTask, mangle: Any
) -> None:
    cursor = a_cursor(client, user, make_task, {})
    response = client.get("/tasks", params={"cursor": mangle(cursor), "limit": 1}, headers=user)
    assert_invalid(response, ["query", "cursor"])


@pytest.mark.parametrize(
    "reused_with",
    [
        {"sort_by": "priority"},
        {"order": "asc"},
        {"sort_by": "created_at", "order": "asc"},
        {"sort_by": "due_date", "order": "desc"},
    ],
)
def test_cursor_reused_with_another_sort_is_422(
    client: TestClient, user: Headers, make_task: MakeTask, reused_with: Params
) -> None:
    cursor = a_cursor(client, user, make_task, {"sort_by": "created_at", "order": "desc"})
    assert get_page(client, user, {"cursor": cursor, "limit": 1}).json()["items"]  # fine with its own sort
    response = client.get("/tasks", params={"cursor": cursor, "limit": 1, **reused_with}, headers=user)
    assert_invalid(response, ["query", "cursor"])
