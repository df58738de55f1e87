"""A job the users worker gives up on is listed and replayed by an admin through the gateway.

The system's real processes: a job message the worker cannot run (its
arguments are wrong, which retrying cannot fix) is dead-lettered at once by
the kit's retry middleware, kept by the ops service, listed by
`GET /api/v1/admin/dead-letters` and put back on its queue by
`POST /api/v1/admin/dead-letters/{id}/replay`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
import httpx
import orjson

from emporium_kit.messaging import JOBS_EXCHANGE

from .conftest import AMQP_URL, Shopper, System

JOB = "users.send_password_reset_email"


async def _send_broken_job(system: System) -> str:
    """A job message as taskiq sends one, with an argument the job does not take."""
    job_id = uuid.uuid4().hex
    message = {
        "task_id": job_id,
        "task_name": JOB,
        "labels": {},
        "labels_types": None,
        "args": [],
        "kwargs": {"no_such_argument": True},
    }
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(JOBS_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                body=orjson.dumps(message),
                headers={"task_id": job_id, "task_name": JOB},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=system.jobs_queue,
        )
    return job_id


async def _letters(api: httpx.AsyncClient, admin: Shopper, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/admin/dead-letters", params=params, headers=admin.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _wait_for(
    api: httpx.AsyncClient, admin: Shopper, queue: str, job_id: str, count: int
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        mine = [
            item for item in await _letters(api, admin, queue=queue) if item["message_id"] == job_id
        ]
        if len(mine) >= count or asyncio.get_running_loop().time() > deadline:
            return mine
        await asyncio.sleep(0.1)


async def test_a_dead_job_is_listed_and_replayed_by_an_admin(
    api: httpx.AsyncClient, system: System, admin: Shopper, shopper: Any
) -> None:
    job_id = await _send_broken_job(system)

    [letter] = await _wait_for(api, admin, system.jobs_queue, job_id, 1)
    assert letter["kind"] == "job"
    assert letter["name"] == JOB
    assert letter["service"] == "users"
    assert letter["queue"] == system.jobs_queue
    assert letter["attempts"] == 1  # a TypeError: retrying cannot help
    assert "TypeError" in letter["last_error"]
    assert letter["replayed_at"] is None

    customer = await shopper("dead-letters")
    forbidden = await api.get("/api/v1/admin/dead-letters", headers=customer.auth)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    anonymous = await api.get("/api/v1/admin/dead-letters")
    assert anonymous.status_code == 401

    replay = await api.post(f"/api/v1/admin/dead-letters/{letter['id']}/replay", headers=admin.auth)
    assert replay.status_code == 202, replay.text
    assert replay.json()["replayed_at"] is not None
    again = await api.post(f"/api/v1/admin/dead-letters/{letter['id']}/replay", headers=admin.auth)
    assert again.status_code == 409
    # The replayed message ran again (and, still broken, came back as a new dead letter).
    assert len(await _wait_for(api, admin, system.jobs_queue, job_id, 2)) == 2

    unknown = await api.post(
        f"/api/v1/admin/dead-letters/{uuid.uuid4()}/replay", headers=admin.auth
    )
    assert unknown.status_code == 404
    malformed = await api.post("/api/v1/admin/dead-letters/not-a-uuid/replay", headers=admin.auth)
    assert malformed.status_code in (400, 422)
