from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio

from mailsink.http_api import create_app
from mailsink.mailbox import Mailbox
from mailsink.message import CapturedMessage

Capture = Callable[..., CapturedMessage]
RawBuilder = Callable[..., bytes]


@pytest.fixture
def filled_mailbox(capture: Capture, build_raw: RawBuilder) -> Mailbox:
    mailbox = Mailbox(max_messages=10)
    for number, to in enumerate(["alice", "bob", "alice"], start=1):
        mailbox.add(capture(build_raw(to=f"{to}@example.test", subject=f"message {number}")))
    return mailbox


@pytest_asyncio.fixture
async def api(filled_mailbox: Mailbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(filled_mailbox))
    async with httpx.AsyncClient(transport=transport, base_url="http://mailsink") as client:
        yield client


@pytest.mark.asyncio
async def test_list_is_newest_first_with_mailpit_counters(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/messages", params={"start": 1, "limit": 1})

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("total", "unread", "count", "messages_count", "start")} == {
        "total": 3,
        "unread": 3,
        "count": 1,
        "messages_count": 3,
        "start": 1,
    }
    assert body["tags"] == []
    assert [m["Subject"] for m in body["messages"]] == ["message 2"]


@pytest.mark.asyncio
async def test_summary_has_every_mailpit_field(api: httpx.AsyncClient) -> None:
    summary = (await api.get("/api/v1/messages")).json()["messages"][0]

    assert summary == {
        "ID": "id-3",
        "MessageID": "m-1@example.test",
        "Read": False,
        "From": {"Name": "Shop", "Address": "shop@example.test"},
        "To": [{"Name": "", "Address": "alice@example.test"}],
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "Subject": "message 3",
        "Created": "2025-03-01T09:30:00.000Z",
        "Tags": [],
        "Size": summary["Size"],
        "Attachments": 0,
        "Snippet": "Plain body",
    }
    assert summary["Size"] > 100


@pytest.mark.asyncio
async def test_invalid_paging_values_fall_back_to_defaults(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/v1/messages", params={"start": "x", "limit": "-4"})).json()

    assert (body["start"], body["count"]) == (0, 3)


@pytest.mark.asyncio
async def test_message_by_id_and_latest_mark_it_read(api: httpx.AsyncClient) -> None:
    by_id = await api.get("/api/v1/message/id-2")
    latest = await api.get("/api/v1/message/latest")

    assert by_id.status_code == 200
    assert by_id.json()["Subject"] == "message 2"
    assert by_id.json()["Text"] == "Plain body\n"
    assert by_id.json()["HTML"] == ""
    assert by_id.json()["ReturnPath"] == "bounce@example.test"
    assert latest.json()["ID"] == "id-3"
    assert (await api.get("/api/v1/messages")).json()["unread"] == 1


@pytest.mark.asyncio
async def test_unknown_message_is_a_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/message/does-not-exist")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"Error": "message not found"}


@pytest.mark.asyncio
async def test_latest_of_an_empty_mailbox_is_a_404(api: httpx.AsyncClient) -> None:
    await api.delete("/api/v1/messages")

    assert (await api.get("/api/v1/message/latest")).status_code == 404


@pytest.mark.asyncio
async def test_raw_source_is_served_as_received(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/message/id-1/raw")

    assert response.status_code == 200
    assert response.content.startswith(b"From: Shop <shop@example.test>\r\nTo: alice@example.test")


@pytest.mark.asyncio
async def test_delete_with_ids_removes_only_those(api: httpx.AsyncClient) -> None:
    response = await api.request("DELETE", "/api/v1/messages", json={"IDs": ["id-1", "id-3"]})

    assert (response.status_code, response.text) == (200, "ok")
    listing = (await api.get("/api/v1/messages")).json()
    assert [m["ID"] for m in listing["messages"]] == ["id-2"]


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [None, {}, {"IDs": []}])
async def test_delete_without_ids_empties_the_mailbox(
    api: httpx.AsyncClient, body: dict[str, list[str]] | None
) -> None:
    response = await api.request("DELETE", "/api/v1/messages", json=body)

    assert response.status_code == 200
    assert (await api.get("/api/v1/messages")).json()["total"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("content", [b"not json", b'{"IDs": "id-1"}', b"[1, 2]"])
async def test_malformed_delete_body_is_refused_and_deletes_nothing(
    api: httpx.AsyncClient, content: bytes
) -> None:
    response = await api.request("DELETE", "/api/v1/messages", content=content)

    assert response.status_code == 400
    assert (await api.get("/api/v1/messages")).json()["total"] == 3


@pytest.mark.asyncio
async def test_search_by_recipient_counts_matches(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/search", params={"query": "to:alice@example.test"})

    body = response.json()
    assert response.status_code == 200
    assert [m["ID"] for m in body["messages"]] == ["id-3", "id-1"]
    assert (body["total"], body["messages_count"], body["count"]) == (3, 2, 2)


@pytest.mark.asyncio
async def test_search_pages_through_matches(api: httpx.AsyncClient) -> None:
    params = {"query": "to:alice", "start": "1", "limit": "5"}
    body = (await api.get("/api/v1/search", params=params)).json()

    assert [m["ID"] for m in body["messages"]] == ["id-1"]
    assert (body["start"], body["messages_count"]) == (1, 2)


@pytest.mark.asyncio
async def test_search_without_query_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/search", params={"query": "  "})

    assert response.status_code == 400
    assert response.json() == {"Error": "no search query"}


@pytest.mark.asyncio
async def test_delete_by_search_removes_the_matches(api: httpx.AsyncClient) -> None:
    response = await api.delete("/api/v1/search", params={"query": 'subject:"message 2"'})

    assert response.status_code == 200
    listing = (await api.get("/api/v1/messages")).json()
    assert [m["ID"] for m in listing["messages"]] == ["id-3", "id-1"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/livez", "ok"),
        ("/readyz", "ok"),
        ("/health/live", '{"status":"ok"}'),
        ("/health/ready", '{"status":"ok"}'),
    ],
)
async def test_probes_answer_200(api: httpx.AsyncClient, path: str, expected: str) -> None:
    response = await api.get(path)

    assert (response.status_code, response.text) == (200, expected)
