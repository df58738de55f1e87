"""GET /api/v1/admin/dead-letters: what the consumer stored, newest first, a page at a time."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractExchange
from ops_testkit import SigningKey, dead_letter
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.usefixtures("app")


async def _insert_rows(database_url: str, rows: list[tuple[uuid.UUID, str, datetime]]) -> None:
    """Dead letters straight into the table, with the received_at each test needs."""
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.executemany(
            "INSERT INTO dead_letters (id, service, queue, kind, name, message_id, body, "
            "attempts, first_failed_at, last_failed_at, last_error, received_at) "
            "VALUES ($1, 'orders', $2, 'job', 'orders.expire', 'm', '\\x7b7d'::bytea, 3, "
            "$3, $3, 'boom', $3)",
            rows,
        )
    finally:
        await conn.close()


async def test_a_published_dead_letter_is_listed_with_every_field(api, publish) -> None:
    letter = dead_letter(
        queue="orders.payments",
        headers={"x-request-id": "req-42", "x-attempt": 5},
        message_id="job-7f3a",
        kind="job",
        name="orders.charge_payment",
    )
    await publish(letter)

    item = await api.wait_for(letter.id)

    assert item == {
        "id": str(letter.id),
        "service": "orders",
        "queue": "orders.payments",
        "kind": "job",
        "name": "orders.charge_payment",
        "message_id": "job-7f3a",
        "headers": {"x-request-id": "req-42", "x-attempt": 5},
        "payload": {"order_id": "8d9e0c1a-6f6b-4f55-9a47-0c2b8a7f1e11"},
        "body_base64": letter.body_base64,
        "attempts": 5,
        "first_failed_at": letter.first_failed_at.isoformat().replace("+00:00", "Z"),
        "last_failed_at": letter.last_failed_at.isoformat().replace("+00:00", "Z"),
        "last_error": "TimeoutError: the payment provider did not answer",
        "received_at": item["received_at"],
        "replayed_at": None,
        "replay_count": 0,
    }
    received = datetime.fromisoformat(item["received_at"])
    assert abs(datetime.now(UTC) - received) < timedelta(seconds=30)


async def test_a_body_that_is_not_json_is_listed_with_a_null_payload(api, publish) -> None:
    body = b"\x00\xffnot json"
    letter = dead_letter(queue="users.mailer", body=body)
    await publish(letter)

    item = await api.wait_for(letter.id)

    assert item["payload"] is None
    assert base64.b64decode(item["body_base64"]) == body


async def test_the_same_dead_letter_delivered_twice_is_stored_once(api, publish) -> None:
    letter = dead_letter(queue="orders.payments")
    await publish(letter)
    await publish(letter)
    # Consumed one at a time (prefetch 1): once the next one is stored, both copies were.
    sentinel = dead_letter(queue="orders.payments")
    await publish(sentinel)
    await api.wait_for(sentinel.id)

    items = await api.items()

    assert [item["id"] for item in items].count(str(letter.id)) == 1
    assert len(items) == 2


async def test_a_message_that_is_no_dead_letter_is_kept_and_cannot_be_replayed(
    api, dead_letters_exchange: AbstractExchange, dead_letters_queue: str
) -> None:
    garbage = b'{"not": "a dead letter"}'
    message = aio_pika.Message(
        body=garbage, message_id="garbage-1", app_id="catalog", headers={"x-request-id": "r-9"}
    )
    await dead_letters_exchange.publish(message, routing_key=dead_letters_queue)
    await dead_letters_exchange.publish(message, routing_key=dead_letters_queue)
    sentinel = dead_letter(queue="orders.payments")
    await dead_letters_exchange.publish(
        aio_pika.Message(body=sentinel.model_dump_json().encode()), routing_key=dead_letters_queue
    )
    await api.wait_for(sentinel.id)

    kept = [item for item in await api.items() if item["name"] == "unparseable"]

    assert len(kept) == 1  # its redelivery is recognised, like a dead letter's
    assert kept[0]["kind"] == "event"
    assert kept[0]["service"] == "catalog"
    assert kept[0]["queue"] == dead_letters_queue
    assert kept[0]["message_id"] == "garbage-1"
    assert kept[0]["headers"] == {"x-request-id": "r-9"}
    assert base64.b64decode(kept[0]["body_base64"]) == garbage
    assert kept[0]["payload"] == {"not": "a dead letter"}
    assert "ValidationError" in kept[0]["last_error"]
    refused = await api.replay(kept[0]["id"])
    assert refused.status_code == 409
    assert refused.json()["type"] == "https://emporium.dev/problems/not-replayable"


async def test_paging_walks_every_dead_letter_once_newest_first(api, database_url: str) -> None:
    base = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    rows = [(uuid.uuid4(), "orders.payments", base + timedelta(seconds=i)) for i in range(23)]
    # Seven received in the same microsecond: the id decides between them.
    rows += [(uuid.uuid4(), "orders.payments", base + timedelta(seconds=10)) for _ in range(7)]
    await _insert_rows(database_url, rows)
    expected = [str(i) for i, _, _ in sorted(rows, key=lambda r: (r[2], r[0]), reverse=True)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        response = await api.page(**params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == expected
    assert pages == 5  # 30 rows, 7 a page


async def test_the_default_page_is_twenty(api, database_url: str) -> None:
    base = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await _insert_rows(
        database_url, [(uuid.uuid4(), "q", base + timedelta(seconds=i)) for i in range(21)]
    )

    body = (await api.page()).json()

    assert len(body["items"]) == 20
    assert body["next_cursor"] is not None


async def test_the_queue_filter_lists_only_that_queues_dead_letters(api, database_url: str) -> None:
    base = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    payments = [(uuid.uuid4(), "orders.payments", base + timedelta(seconds=i)) for i in range(5)]
    mailer = [(uuid.uuid4(), "users.mailer", base + timedelta(seconds=i)) for i in range(3)]
    prefix = [(uuid.uuid4(), "orders.payments.retry", base)]
    await _insert_rows(database_url, payments + mailer + prefix)

    first = await api.page(queue="orders.payments", limit=3)
    second = await api.page(queue="orders.payments", cursor=first.json()["next_cursor"])

    listed = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert listed == [str(i) for i, _, _ in reversed(payments)]
    assert second.json()["next_cursor"] is None
    assert {item["queue"] for item in await api.items(queue="users.mailer")} == {"users.mailer"}
    assert await api.items(queue="no.such.queue") == []


async def test_a_tampered_cursor_is_a_400_problem(api, database_url: str) -> None:
    base = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await _insert_rows(
        database_url, [(uuid.uuid4(), "q", base + timedelta(seconds=i)) for i in range(3)]
    )
    cursor = (await api.page(limit=1)).json()["next_cursor"]
    payload, _, signature = cursor.partition(".")
    forged = base64.urlsafe_b64encode(b'{"r":"2999-01-01T00:00:00+00:00","i":"x"}').rstrip(b"=")

    edited = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{edited}.{signature}", f"{forged.decode()}.{signature}", "garbage", "a.b.c"):
        response = await api.page(cursor=bad)
        assert response.status_code == 400, bad
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "https://emporium.dev/problems/invalid-cursor"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"queue": ""},
        {"queue": "q" * 256},
        {"queue": "bad\x00queue"},
        {"queue": "two\nlines"},
        {"cursor": "c" * 1025},
    ],
)
async def test_bad_listing_parameters_are_422_problems(api, params: dict[str, object]) -> None:
    response = await api.page(**params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_the_listing_needs_a_token_and_ops_admin(client, customer) -> None:
    anonymous = await client.get("/api/v1/admin/dead-letters")
    as_customer = await client.get("/api/v1/admin/dead-letters", headers=customer)

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert as_customer.status_code == 403
    assert as_customer.json()["type"] == "https://emporium.dev/problems/forbidden"
    assert "ops:admin" in as_customer.json()["detail"]


async def test_a_token_not_signed_by_users_is_a_401(client) -> None:
    stranger = SigningKey().admin_headers()

    response = await client.get("/api/v1/admin/dead-letters", headers=stranger)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
