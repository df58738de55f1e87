"""RabbitMQ stopped (``rabbitmqctl stop_app``) while reset jobs are enqueued, then
started: every job runs and each email arrives exactly once.

The machine's RabbitMQ is shared with every other test, so this module starts a node
of its own (``emporium_testkit.rabbitmq_node``) and really stops its application; the
app (with its outbox relay) and the users worker talk to that node only.

In the first test, at the ``stop_app``, some jobs are in RabbitMQ (published to the
worker's durable quorum queue while no worker consumed it) and more are asked for
during the outage (the API answers 202: the outbox holds them). After ``start_app``
the queue still holds the first ones, the relay publishes the others, and a worker
runs them all. In the second, a worker stays up through the stop: RabbitMQ closes
its connection, and once started again the same worker consumes the jobs asked for
meanwhile.

``test_broker_outage.py`` stays: it plays a network partition (a TCP proxy drops the
connections, the broker keeps running and the worker stays up through it), which a
stopped broker is not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from users_testkit import (
    SmtpStandIn,
    query,
    reset_jobs_run,
    reset_tokens_of,
    running_worker,
    wait_until,
)

from emporium_testkit.isolation import truncate_all
from emporium_testkit.rabbitmq_node import RabbitMQNode, private_rabbitmq
from users.main import create_app
from users.settings import UsersSettings

PASSWORD = "stop-app-pass-1"
EACH = 3  # resets per group


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitMQNode]:
    with private_rabbitmq() as started:
        yield started


@pytest.fixture
async def on_node(settings: UsersSettings, node: RabbitMQNode, smtp: SmtpStandIn) -> UsersSettings:
    await truncate_all(settings.database_url, keep=("roles", "permissions", "role_permissions"))
    return settings.model_copy(
        update={
            # The worker's robust connections retry every 0.2 s instead of every 5 s.
            "amqp_url": node.amqp_url(reconnect_interval="0.2"),
            "run_outbox_relay": True,
            "smtp_port": smtp.port,
        }
    )


async def _jobs(settings: UsersSettings) -> list[tuple[bool, int]]:
    rows = await query(
        settings,
        "SELECT published_at IS NOT NULL AS published, attempts FROM outbox "
        "WHERE destination = 'jobs' ORDER BY occurred_at",
    )
    return [(row.published, row.attempts) for row in rows]


async def _queued(settings: UsersSettings) -> int:
    """How many messages the worker's job queue holds on the node (ready ones)."""
    connection = await aio_pika.connect(settings.amqp_url.split("?")[0], timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.jobs_queue, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_reset_jobs_enqueued_when_rabbitmq_stops_all_run_once_after_it_starts(
    on_node: UsersSettings, node: RabbitMQNode, smtp: SmtpStandIn
) -> None:
    settings = on_node
    queued = [f"queued{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(EACH)]
    held = [f"held{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(EACH)]
    everyone = queued + held
    app = create_app(settings)
    # The worker declares its queues on the node, so the relay's jobs are routed.
    async with running_worker(settings):
        pass
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
            base_url="http://users.test",
        ) as http,
    ):
        for address in everyone:
            registered = await http.post(
                "/api/v1/auth/register",
                json={"email": address, "password": PASSWORD, "full_name": "Stopped Stan"},
            )
            assert registered.status_code == 201, registered.text

        # No worker consumes: the relay's jobs wait in RabbitMQ's queue.
        for address in queued:
            requested = await http.post(
                "/api/v1/auth/password-reset/request", json={"email": address}
            )
            assert requested.status_code == 202
        await wait_until(
            lambda: _published(settings, EACH), within=20, what="the first jobs published"
        )
        assert await _queued(settings) == EACH

        await asyncio.to_thread(node.stop_app)
        for address in held:
            requested = await http.post(
                "/api/v1/auth/password-reset/request", json={"email": address}
            )
            assert requested.status_code == 202
        # The relay tried each new job, could not publish it, and keeps it.
        await wait_until(
            lambda: _tried_and_kept(settings, EACH),
            within=20,
            what="the jobs asked for during the outage tried and kept in the outbox",
        )
        assert [smtp.texts(address) for address in everyone] == [[]] * len(everyone)

        await asyncio.to_thread(node.start_app)
        # The node kept the jobs it held when it stopped (persistent, quorum queue).
        assert await _queued(settings) >= EACH
        async with running_worker(settings):
            await wait_until(
                lambda: all(smtp.texts(address) for address in everyone),
                within=60,
                what="every email after the broker started",
            )
            await wait_until(
                lambda: _jobs_run_at_least(settings, len(everyone)),
                what="every job committed",
            )
            # A late duplicate delivery would show up here.
            await asyncio.sleep(1.0)
            assert await _queued(settings) == 0

    assert [len(smtp.texts(address)) for address in everyone] == [1] * len(everyone)
    assert [await reset_tokens_of(settings, address) for address in everyone] == [1] * len(everyone)
    assert await reset_jobs_run(settings) == len(everyone)
    jobs = await _jobs(settings)
    assert len(jobs) == len(everyone)
    assert all(published for published, _ in jobs)


async def test_a_worker_up_through_the_stop_runs_the_jobs_asked_for_meanwhile_once_each(
    on_node: UsersSettings, node: RabbitMQNode, smtp: SmtpStandIn
) -> None:
    settings = on_node
    before = [f"before{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(EACH)]
    during = [f"during{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(EACH)]
    everyone = before + during
    app = create_app(settings)
    async with (
        running_worker(settings),
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
            base_url="http://users.test",
        ) as http,
    ):
        for address in everyone:
            registered = await http.post(
                "/api/v1/auth/register",
                json={"email": address, "password": PASSWORD, "full_name": "Steady Stella"},
            )
            assert registered.status_code == 201, registered.text
        for address in before:
            requested = await http.post(
                "/api/v1/auth/password-reset/request", json={"email": address}
            )
            assert requested.status_code == 202
        await wait_until(
            lambda: all(smtp.texts(address) for address in before),
            within=20,
            what="the emails asked for before the stop",
        )

        # RabbitMQ closes the worker's and the relay's connections (connection_forced).
        await asyncio.to_thread(node.stop_app)
        for address in during:
            requested = await http.post(
                "/api/v1/auth/password-reset/request", json={"email": address}
            )
            assert requested.status_code == 202
        await wait_until(
            lambda: _tried_and_kept(settings, EACH),
            within=20,
            what="the jobs asked for during the outage tried and kept in the outbox",
        )
        assert [smtp.texts(address) for address in during] == [[]] * EACH

        await asyncio.to_thread(node.start_app)
        # The same worker, reconnected by itself, consumes again.
        await wait_until(
            lambda: all(smtp.texts(address) for address in during),
            within=60,
            what="the emails asked for during the outage",
        )
        await wait_until(
            lambda: _jobs_run_at_least(settings, len(everyone)), what="every job committed"
        )
        await asyncio.sleep(1.0)

    assert [len(smtp.texts(address)) for address in everyone] == [1] * len(everyone)
    assert [await reset_tokens_of(settings, address) for address in everyone] == [1] * len(everyone)
    assert await reset_jobs_run(settings) == len(everyone)
    assert all(published for published, _ in await _jobs(settings))


async def _published(settings: UsersSettings, count: int) -> bool:
    jobs = await _jobs(settings)
    return len(jobs) == count and all(published for published, _ in jobs)


async def _tried_and_kept(settings: UsersSettings, count: int) -> bool:
    pending = [tries for published, tries in await _jobs(settings) if not published]
    return len(pending) == count and all(tries >= 1 for tries in pending)


async def _jobs_run_at_least(settings: UsersSettings, count: int) -> bool:
    return await reset_jobs_run(settings) >= count
