"""The idempotent consumer against a real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.messaging import EventEnvelope, dead_letter_queue_name, declare_events_exchange
from emporium_kit.messaging.consumer import EventConsumer, EventHandler

from .support import AMQP_URL, MessagingTables, wait_until

CONSUMER_NAME = "kit-test-consumer"


def _consumer(
    handler: EventHandler,
    *,
    queue: str,
    routing_key: str,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    **options: Any,
) -> EventConsumer:
    return EventConsumer(
        AMQP_URL,
        queue=queue,
        routing_keys=[routing_key],
        handler=handler,
        session_factory=session_factory,
        inbox=tables.inbox,
        consumer_name=CONSUMER_NAME,
        **options,
    )


async def _publish(
    channel: AbstractChannel, routing_key: str, body: bytes, message_id: str
) -> None:
    exchange = await declare_events_exchange(channel)
    await exchange.publish(
        aio_pika.Message(body, message_id=message_id, content_type="application/json"),
        routing_key,
    )


async def _publish_envelope(channel: AbstractChannel, envelope: EventEnvelope) -> None:
    await _publish(channel, envelope.type, envelope.to_json(), str(envelope.id))


async def _inbox_ids(engine: AsyncEngine, inbox: sa.Table) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.select(inbox.c.message_id).where(inbox.c.consumer == CONSUMER_NAME)
        )
        return set(result.scalars())


async def _ready_count(channel: AbstractChannel, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue`` as the broker reports them now."""
    declared = await channel.declare_queue(queue, passive=True)
    result = declared.declaration_result
    return result.message_count or 0, result.consumer_count or 0


async def _next_dead_letter(channel: AbstractChannel, queue: str) -> AbstractIncomingMessage:
    dlq = await channel.declare_queue(dead_letter_queue_name(queue), passive=True)
    got: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        message = await dlq.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await wait_until(arrived, within=15)
    return got[0]


async def test_message_delivered_twice_is_handled_once(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
) -> None:
    handled: list[uuid.UUID] = []
    inbox_row_visible: list[bool] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        # The handler runs in the transaction that holds the new inbox row.
        own_row = await session.scalar(
            sa.select(sa.func.count()).where(tables.inbox.c.message_id == envelope.id)
        )
        inbox_row_visible.append(own_row == 1)
        handled.append(envelope.id)

    queue = queue_names()
    consumer = _consumer(
        handler,
        queue=queue,
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
        prefetch=1,  # one at a time, in order: the sentinel comes last
    )
    duplicate = EventEnvelope.new(routing_key, {"n": 1})
    sentinel = EventEnvelope.new(routing_key, {"n": 2})
    await consumer.start()
    try:
        for envelope in (duplicate, duplicate, sentinel):
            await _publish_envelope(amqp_channel, envelope)
        await wait_until(lambda: sentinel.id in handled)
    finally:
        await consumer.stop()

    assert handled == [duplicate.id, sentinel.id]
    assert inbox_row_visible == [True, True]
    assert await _inbox_ids(engine, tables.inbox) == {duplicate.id, sentinel.id}
    assert await _ready_count(amqp_channel, queue) == (0, 0)


async def test_handler_failure_is_retried_then_dead_lettered(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
) -> None:
    calls: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls.append(envelope.id)
        raise RuntimeError("handler is broken")

    queue = queue_names()
    consumer = _consumer(
        handler,
        queue=queue,
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
        delivery_limit=2,
    )
    event = EventEnvelope.new(routing_key, {"n": 1})
    await consumer.start()
    try:
        await _publish_envelope(amqp_channel, event)
        dead = await _next_dead_letter(amqp_channel, queue)
    finally:
        await consumer.stop()

    assert dead.message_id == str(event.id)
    assert dead.headers["x-first-death-reason"] == "delivery_limit"
    assert EventEnvelope.from_json(dead.body) == event
    assert calls == [event.id] * 3  # the first delivery and `delivery_limit` redeliveries
    assert await _inbox_ids(engine, tables.inbox) == set()  # every attempt rolled back
    assert await _ready_count(amqp_channel, queue) == (0, 0)


async def test_unparseable_message_is_dead_lettered_without_calling_the_handler(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
) -> None:
    calls: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls.append(envelope.id)

    queue = queue_names()
    consumer = _consumer(
        handler,
        queue=queue,
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
    )
    await consumer.start()
    try:
        await _publish(amqp_channel, routing_key, b'{"not": "an envelope"', "broken-1")
        dead = await _next_dead_letter(amqp_channel, queue)
    finally:
        await consumer.stop()

    assert dead.message_id == "broken-1"
    assert dead.body == b'{"not": "an envelope"'
    assert dead.headers["x-first-death-reason"] == "rejected"
    assert calls == []
    assert await _inbox_ids(engine, tables.inbox) == set()


async def test_consumer_stop_waits_for_in_flight_handler(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.id)

    queue = queue_names()
    consumer = _consumer(
        handler,
        queue=queue,
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
    )
    in_flight = EventEnvelope.new(routing_key, {"n": 1})
    after_stop = EventEnvelope.new(routing_key, {"n": 2})
    await consumer.start()
    await _publish_envelope(amqp_channel, in_flight)
    await asyncio.wait_for(started.wait(), timeout=10)

    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0)  # stop() has begun: no new message is handled from here on
    await _publish_envelope(amqp_channel, after_stop)
    done, _ = await asyncio.wait({stopping}, timeout=0.3)
    assert done == set()  # stop() is waiting for the handler
    assert consumer.in_flight == 1

    release.set()
    await asyncio.wait_for(stopping, timeout=10)

    assert finished == [in_flight.id]  # the message published during stop() was not handled
    assert consumer.in_flight == 0
    assert await _inbox_ids(engine, tables.inbox) == {in_flight.id}
    # The in-flight message was acked before the connection closed; the later one waits.
    assert await _ready_count(amqp_channel, queue) == (1, 0)
