"""POST /api/v1/admin/dead-letters/{id}/replay: the original message, once, on its queue."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from asgi_lifespan import LifespanManager
from ops_testkit import dead_letter

from emporium_testkit.processes import free_port
from ops.main import create_app
from ops.settings import OpsSettings

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
async def original_queue(
    channel: AbstractChannel, queue_names: Callable[[str], str]
) -> AsyncIterator[AbstractQueue]:
    """The queue a consumer gave up on a message of, still there."""
    queue = await channel.declare_queue(
        queue_names("orders-payments"), durable=True, arguments={"x-queue-type": "quorum"}
    )
    yield queue
    with contextlib.suppress(Exception):
        await queue.purge()


async def _drain(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Every message now in ``queue`` (publisher confirms have put replays there)."""
    messages = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        messages.append(message)
    return messages


async def test_replay_puts_the_original_message_back_on_its_queue_once(
    api, publish, original_queue: AbstractQueue
) -> None:
    body = b'{"job_id": "7f3a", "order_id": "8d9e"}'
    letter = dead_letter(
        queue=original_queue.name,
        body=body,
        headers={"x-request-id": "req-77", "x-job-attempt": 5},
        message_id="job-7f3a",
    )
    await publish(letter)
    await api.wait_for(letter.id)

    response = await api.replay(letter.id)

    assert response.status_code == 202, response.text
    item = response.json()
    assert item["id"] == str(letter.id)
    assert item["replay_count"] == 1
    assert datetime.fromisoformat(item["replayed_at"]) >= datetime.fromisoformat(
        item["received_at"]
    )
    messages = await _drain(original_queue)
    assert len(messages) == 1
    assert messages[0].body == body
    assert messages[0].message_id == "job-7f3a"
    # A quorum queue adds its own x-delivery-count to every delivery.
    headers = {k: v for k, v in (messages[0].headers or {}).items() if k != "x-delivery-count"}
    assert headers == {"x-request-id": "req-77", "x-job-attempt": 5}
    listed = await api.wait_for(letter.id)
    assert listed["replayed_at"] == item["replayed_at"]
    assert listed["replay_count"] == 1


async def test_a_second_replay_is_409_and_publishes_nothing(
    api, publish, original_queue: AbstractQueue
) -> None:
    letter = dead_letter(queue=original_queue.name)
    await publish(letter)
    await api.wait_for(letter.id)
    first = await api.replay(letter.id)

    second = await api.replay(letter.id)

    assert first.status_code == 202
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["type"] == "https://emporium.dev/problems/already-replayed"
    assert len(await _drain(original_queue)) == 1


async def test_twenty_concurrent_replays_of_one_dead_letter_publish_it_once(
    api, publish, original_queue: AbstractQueue
) -> None:
    letter = dead_letter(queue=original_queue.name)
    await publish(letter)
    await api.wait_for(letter.id)

    responses = await asyncio.gather(*(api.replay(letter.id) for _ in range(20)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] + [409] * 19
    assert len(await _drain(original_queue)) == 1
    assert (await api.wait_for(letter.id))["replay_count"] == 1


async def test_replay_to_a_deleted_queue_is_409_and_leaves_the_dead_letter_unreplayed(
    api, publish, channel: AbstractChannel, queue_names: Callable[[str], str]
) -> None:
    gone = queue_names("deleted")
    queue = await channel.declare_queue(gone, durable=True, arguments={"x-queue-type": "quorum"})
    letter = dead_letter(queue=gone)
    await publish(letter)
    await api.wait_for(letter.id)
    await queue.delete(if_unused=False, if_empty=False)

    refused = await api.replay(letter.id)

    assert refused.status_code == 409
    assert refused.json()["type"] == "https://emporium.dev/problems/queue-gone"
    listed = await api.wait_for(letter.id)
    assert listed["replayed_at"] is None
    assert listed["replay_count"] == 0
    # Once the queue is back, the replay goes through.
    back = await channel.declare_queue(gone, durable=True, arguments={"x-queue-type": "quorum"})
    assert (await api.replay(letter.id)).status_code == 202
    assert len(await _drain(back)) == 1


async def test_replay_of_a_malformed_id_is_a_422_problem(api) -> None:
    response = await api.replay("not-a-uuid")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["path", "letter_id"]


async def test_replay_of_an_unknown_id_is_a_404_problem(api) -> None:
    response = await api.replay(uuid.uuid4())

    assert response.status_code == 404
    assert response.json()["type"] == "https://emporium.dev/problems/dead-letter-not-found"


async def test_replay_needs_a_token_and_ops_admin(
    client: httpx.AsyncClient, customer: dict[str, str], api, publish, original_queue
) -> None:
    letter = dead_letter(queue=original_queue.name)
    await publish(letter)
    await api.wait_for(letter.id)
    path = f"/api/v1/admin/dead-letters/{letter.id}/replay"

    anonymous = await client.post(path)
    as_customer = await client.post(path, headers=customer)

    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "https://emporium.dev/problems/unauthenticated"
    assert as_customer.status_code == 403
    assert (await api.wait_for(letter.id))["replayed_at"] is None
    assert await _drain(original_queue) == []


async def test_replay_with_rabbitmq_down_is_503_and_changes_nothing(
    settings: OpsSettings, api, publish, admin: dict[str, str], original_queue
) -> None:
    letter = dead_letter(queue=original_queue.name)
    await publish(letter)
    await api.wait_for(letter.id)
    no_broker = settings.model_copy(
        update={
            "amqp_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
            "run_dead_letter_consumer": False,
            "broker_timeout_seconds": 1.0,
        }
    )
    cut_off = create_app(no_broker)

    async with LifespanManager(cut_off):
        transport = httpx.ASGITransport(app=cut_off)
        async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as http:
            response = await http.post(
                f"/api/v1/admin/dead-letters/{letter.id}/replay", headers=admin
            )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert (await api.wait_for(letter.id))["replayed_at"] is None
    assert (await api.replay(letter.id)).status_code == 202
