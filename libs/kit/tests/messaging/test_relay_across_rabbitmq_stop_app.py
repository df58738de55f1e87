"""The outbox relay across a real RabbitMQ stop (``rabbitmqctl stop_app``) and start,
on a node of this module's own (the machine's broker is shared and never stopped):
rows committed while it is stopped wait in the outbox and are published once it is
back; what it held in a durable queue when it stopped is still there."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.messaging import declare_events_exchange
from emporium_kit.messaging.outbox import add_event
from emporium_kit.messaging.relay import OutboxRelay
from emporium_testkit.rabbitmq_node import RabbitMQNode, private_rabbitmq

from .support import MessagingTables, drain, wait_until

FAST_RETRIES: dict[str, Any] = {
    "connect_timeout": 2.0,
    "publish_timeout": 2.0,
    "retry_base_delay": 0.05,
    "retry_max_delay": 0.2,
    "reconnect_base_delay": 0.05,
    "reconnect_max_delay": 0.2,
}


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitMQNode]:
    with private_rabbitmq() as started:
        yield started


@pytest.fixture
async def durable_queue(node: RabbitMQNode, routing_key: str) -> str:
    """A durable quorum queue on the node bound to the events exchange for ``routing_key``
    (the node goes with the module: nothing to delete)."""
    connection = await aio_pika.connect(node.amqp_url(), timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"kit-test-stop-app-{uuid.uuid4().hex[:12]}",
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        await queue.bind(await declare_events_exchange(channel), routing_key=routing_key)
        return queue.name


async def _rows(engine: AsyncEngine, outbox: sa.Table) -> Sequence[sa.Row[Any]]:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(outbox).order_by(outbox.c.occurred_at))).all()


async def _add(
    session_factory: async_sessionmaker[AsyncSession], outbox: sa.Table, key: str, count: int
) -> list[uuid.UUID]:
    async with session_factory() as session, session.begin():
        return [await add_event(session, outbox, key, {"n": n}) for n in range(count)]


async def test_rows_committed_while_rabbitmq_is_stopped_are_published_after_start_app(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    node: RabbitMQNode,
    durable_queue: str,
) -> None:
    relay = OutboxRelay(engine, tables.outbox, node.amqp_url(), **FAST_RETRIES)
    try:
        before = await _add(session_factory, tables.outbox, routing_key, 2)
        assert await relay.publish_pending() == 2

        await asyncio.to_thread(node.stop_app)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", node.amqp_port), timeout=2).close()
        during = await _add(session_factory, tables.outbox, routing_key, 3)
        assert await relay.publish_pending() == 0
        pending = [row for row in await _rows(engine, tables.outbox) if row.published_at is None]
        assert sorted(row.id for row in pending) == sorted(during)
        assert all(row.attempts == 1 and row.last_error for row in pending)

        await asyncio.to_thread(node.start_app)
        published = 0

        async def all_published() -> bool:
            nonlocal published
            published += await relay.publish_pending()
            return published >= len(during)

        await wait_until(all_published, within=20)
    finally:
        await relay.close()

    assert published == len(during)
    assert all(row.published_at is not None for row in await _rows(engine, tables.outbox))
    connection = await aio_pika.connect(node.amqp_url(), timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(durable_queue)
        messages = await drain(queue)
    # The two published before the stop survived it (persistent, quorum queue).
    assert sorted(message.message_id or "" for message in messages) == sorted(
        str(event_id) for event_id in before + during
    )


class _Boom(Exception):
    pass


def _fail_inside(started: list[RabbitMQNode]) -> None:
    with private_rabbitmq() as node:
        started.append(node)
        assert node.pids()
        raise _Boom


def test_a_private_node_is_stopped_and_deleted_when_its_block_fails() -> None:
    started: list[RabbitMQNode] = []
    with pytest.raises(_Boom):
        _fail_inside(started)
    [node] = started
    assert node.pids() == []
    assert not node.base.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.amqp_port), timeout=2).close()
