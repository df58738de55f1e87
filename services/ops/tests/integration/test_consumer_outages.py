"""The dead-letter consumer against real outages: PostgreSQL behind a proxy that goes down,
RabbitMQ absent when ops starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from asgi_lifespan import LifespanManager
from ops_testkit import dead_letter
from sqlalchemy.engine import make_url

from emporium_kit.database import DatabaseSettings, create_engine
from emporium_kit.messaging.dead_letters import declare_dead_letters, publish_dead_letter
from emporium_testkit.isolation import truncate_all
from emporium_testkit.proxy import TcpProxy
from ops.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from ops.entrypoints.consumers.dead_letters import DeadLetterConsumer
from ops.main import create_app
from ops.settings import OpsSettings

AMQP_URL = OpsSettings().amqp_url


async def _stored_ids(database_url: str) -> list[str]:
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        return [str(row["id"]) for row in await conn.fetch("SELECT id FROM dead_letters")]
    finally:
        await conn.close()


async def _wait_until_stored(database_url: str, letter_id: str, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while letter_id not in await _stored_ids(database_url):
        if loop.time() > deadline:
            pytest.fail(f"{letter_id} was not stored within {within}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def postgres_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_while_postgres_is_down_the_dead_letter_is_held_then_stored_once_and_acked(
    database_url: str,
    postgres_proxy: TcpProxy,
    channel: AbstractChannel,
    queue_names: Callable[[str], str],
) -> None:
    await truncate_all(database_url)
    proxied = make_url(database_url).set(port=postgres_proxy.port)
    engine = create_engine(
        DatabaseSettings(url=proxied.render_as_string(hide_password=False)),
        application_name="ops-test",
    )
    queue_name = queue_names("outage")
    exchange, _ = await declare_dead_letters(channel, queue_name)
    consumer = DeadLetterConsumer(
        AMQP_URL,
        uow=SqlUnitOfWorkFactory(engine),
        queue=queue_name,
        prefetch=1,
        retry_max_wait=0.3,
    )
    await consumer.start()
    try:
        postgres_proxy.go_down()
        letter = dead_letter(queue="orders.payments")
        await publish_dead_letter(exchange, letter, queue_name)
        await asyncio.sleep(2.0)

        assert str(letter.id) not in await _stored_ids(database_url)
        assert postgres_proxy.refused >= 2  # retried, with backoff
        assert consumer.in_flight == 1  # held by the consumer ...
        declared = await channel.declare_queue(queue_name, passive=True)
        assert declared.declaration_result.message_count == 0  # ... not requeued

        postgres_proxy.come_up()
        await _wait_until_stored(database_url, str(letter.id))
    finally:
        await consumer.stop()
        await engine.dispose()

    assert (await _stored_ids(database_url)).count(str(letter.id)) == 1
    after = await channel.declare_queue(queue_name, passive=True)
    assert after.declaration_result.message_count == 0  # acked: nothing comes back


async def test_ops_serves_without_rabbitmq_and_consumes_once_it_is_reachable(
    settings: OpsSettings,
    database_url: str,
    admin: dict[str, str],
    channel: AbstractChannel,
    queue_names: Callable[[str], str],
) -> None:
    """Started with RabbitMQ unreachable, ops answers at once and starts its consumer
    later, with backoff. The later start is played by a broker address that begins to
    answer: a proxy to the real broker that is down at start-up."""
    await truncate_all(database_url)
    amqp = urlsplit(AMQP_URL)
    proxy = TcpProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
    await proxy.start()
    proxy.go_down()
    queue_name = queue_names("late-start")
    late = settings.model_copy(
        update={
            "amqp_url": urlunsplit(
                amqp._replace(netloc=f"{amqp.username}:{amqp.password}@127.0.0.1:{proxy.port}")
            ),
            "dead_letters_queue": queue_name,
            "broker_timeout_seconds": 1.0,
        }
    )
    app = create_app(late)
    try:
        async with LifespanManager(app, startup_timeout=10, shutdown_timeout=20):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as http:
                listed = await http.get("/api/v1/admin/dead-letters", headers=admin)
                assert listed.status_code == 200
                assert listed.json() == {"items": [], "next_cursor": None}

                proxy.come_up()
                exchange, _ = await declare_dead_letters(channel, queue_name)
                letter = dead_letter(queue="orders.payments")
                await publish_dead_letter(exchange, letter, queue_name)
                await _wait_until_stored(database_url, str(letter.id), within=30)
    finally:
        await proxy.close()
