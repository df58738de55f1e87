"""The idempotent consumer against a real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.messaging import EventEnvelope, declare_events_exchange
from emporium_kit.messaging.consumer import EventConsumer, EventHandler
from emporium_kit.messaging.dead_letters import DeadLetter

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


async def test_a_failing_handler_is_retried_with_backoff_then_succeeds_once(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
    dead_letters: AbstractQueue,
) -> None:
    calls: list[float] = []
    succeeded: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls.append(asyncio.get_running_loop().time())
        await session.execute(sa.select(1))
        if len(calls) < 3:
            raise ConnectionError("the mail server is down")
        succeeded.append(envelope.id)

    queue = queue_names()
    consumer = _consumer(
        handler,
        queue=queue,
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
        max_attempts=5,
        retry_base_delay=0.05,
        retry_max_delay=0.2,
        dead_letters_queue=dead_letters.name,
    )
    event = EventEnvelope.new(routing_key, {"n": 1})
    await consumer.start()
    try:
        await _publish_envelope(amqp_channel, event)
        await wait_until(lambda: succeeded == [event.id], within=15)
        await asyncio.sleep(0.3)  # nothing more arrives
    finally:
        await consumer.stop()

    assert len(calls) == 3
    assert succeeded == [event.id]
    assert await _inbox_ids(engine, tables.inbox) == {event.id}  # one effect
    assert await _ready_count(amqp_channel, queue) == (0, 0)
    assert await dead_letters.get(no_ack=True, fail=False) is None


async def _next_letter(queue: AbstractQueue) -> DeadLetter:
    got: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await wait_until(arrived, within=15)
    return DeadLetter.model_validate_json(got[0].body)


async def test_a_handler_that_keeps_failing_lands_in_the_dead_letter_list_with_its_error(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
    dead_letters: AbstractQueue,
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
        max_attempts=3,
        retry_base_delay=0.05,
        retry_max_delay=0.1,
        service="kit-test",
        dead_letters_queue=dead_letters.name,
    )
    event = EventEnvelope.new(routing_key, {"n": 1})
    await consumer.start()
    try:
        await _publish_envelope(amqp_channel, event)
        letter = await _next_letter(dead_letters)
    finally:
        await consumer.stop()

    assert (letter.kind, letter.queue, letter.name) == ("event", queue, routing_key)
    assert (letter.service, letter.message_id, letter.attempts) == ("kit-test", str(event.id), 3)
    assert letter.last_error == "RuntimeError: handler is broken"
    assert letter.first_failed_at < letter.last_failed_at
    assert EventEnvelope.from_json(letter.body) == event  # the message, byte for byte
    assert "x-emporium-attempts" not in letter.headers  # a replay starts afresh
    assert calls == [event.id] * 3
    assert await _inbox_ids(engine, tables.inbox) == set()  # every attempt rolled back
    assert await _ready_count(amqp_channel, queue) == (0, 0)


async def test_an_error_retrying_cannot_fix_is_dead_lettered_at_once(
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
    dead_letters: AbstractQueue,
) -> None:
    calls: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls.append(envelope.id)
        raise LookupError("the user it is about was deleted")

    consumer = _consumer(
        handler,
        queue=queue_names(),
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
        dead_letters_queue=dead_letters.name,
    )
    event = EventEnvelope.new(routing_key, {"n": 1})
    await consumer.start()
    try:
        await _publish_envelope(amqp_channel, event)
        letter = await _next_letter(dead_letters)
    finally:
        await consumer.stop()
    assert calls == [event.id]
    assert letter.attempts == 1
    assert letter.last_error.startswith("LookupError")


async def test_unparseable_message_is_dead_lettered_without_calling_the_handler(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    queue_names: Callable[[], str],
    amqp_channel: AbstractChannel,
    dead_letters: AbstractQueue,
) -> None:
    calls: list[uuid.UUID] = []

    async def handler(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls.append(envelope.id)

    consumer = _consumer(
        handler,
        queue=queue_names(),
        routing_key=routing_key,
        tables=tables,
        session_factory=session_factory,
        dead_letters_queue=dead_letters.name,
    )
    await consumer.start()
    try:
        await _publish(amqp_channel, routing_key, b'{"not": "an envelope"', "broken-1")
        letter = await _next_letter(dead_letters)
    finally:
        await consumer.stop()

    assert letter.message_id == "broken-1"
    assert letter.body == b'{"not": "an envelope"'
    assert letter.attempts == 1
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
