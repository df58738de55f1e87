"""The outbox and its relay against a real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.messaging import EventEnvelope, declare_events_exchange
from emporium_kit.messaging.outbox import add_event
from emporium_kit.messaging.relay import OutboxRelay
from emporium_kit.messaging.tables import define_outbox_table

from .support import AMQP_URL, BrokerProxy, MessagingTables, drain, wait_until

CaptureQueue = Callable[[str], Awaitable[AbstractQueue]]

# Short delays so a test sees several retries in well under a second.
FAST_RETRIES: dict[str, Any] = {
    "connect_timeout": 2.0,
    "publish_timeout": 2.0,
    "retry_base_delay": 0.05,
    "retry_max_delay": 0.2,
    "reconnect_base_delay": 0.05,
    "reconnect_max_delay": 0.2,
}


class _AbortUnitOfWork(Exception):
    pass


async def _outbox_rows(engine: AsyncEngine, outbox: sa.Table) -> Sequence[sa.Row[Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(outbox).order_by(outbox.c.occurred_at))
        return result.all()


async def _add_committed_events(
    session_factory: async_sessionmaker[AsyncSession],
    outbox: sa.Table,
    routing_key: str,
    count: int,
) -> list[uuid.UUID]:
    async with session_factory() as session, session.begin():
        return [await add_event(session, outbox, routing_key, {"n": n}) for n in range(count)]


async def test_event_in_rolled_back_transaction_is_never_published(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
) -> None:
    queue = await capture_queue(routing_key)

    async def unit_of_work_that_fails() -> None:
        async with session_factory() as session, session.begin():
            await add_event(session, tables.outbox, routing_key, {"order_id": "rolled-back"})
            raise _AbortUnitOfWork

    with pytest.raises(_AbortUnitOfWork):
        await unit_of_work_that_fails()
    async with engine.connect() as conn:
        # The same holds on a Core connection.
        await add_event(conn, tables.outbox, routing_key, {"order_id": "also-rolled-back"})
        await conn.rollback()
    async with session_factory() as session, session.begin():
        committed_id = await add_event(
            session,
            tables.outbox,
            routing_key,
            {"order_id": "committed"},
            headers={"x-request-id": "req-1"},
        )

    relay = OutboxRelay(engine, tables.outbox, AMQP_URL)
    try:
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
    finally:
        await relay.close()

    messages = await drain(queue)
    assert [message.message_id for message in messages] == [str(committed_id)]
    envelope = EventEnvelope.from_json(messages[0].body)
    assert envelope.id == committed_id
    assert envelope.type == routing_key
    assert envelope.payload == {"order_id": "committed"}
    assert envelope.headers == {"x-request-id": "req-1"}
    assert messages[0].headers is not None
    assert messages[0].headers["x-request-id"] == "req-1"
    assert messages[0].type == routing_key
    assert messages[0].content_type == "application/json"
    assert messages[0].delivery_mode == 2  # persistent
    rows = await _outbox_rows(engine, tables.outbox)
    assert [row.id for row in rows] == [committed_id]
    assert rows[0].published_at is not None


async def test_outbox_rows_wait_while_broker_is_down_and_are_published_after_it_returns(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
    broker_proxy: BrokerProxy,
) -> None:
    queue = await capture_queue(routing_key)  # bound directly, not through the proxy
    relay = OutboxRelay(engine, tables.outbox, broker_proxy.amqp_url, **FAST_RETRIES)
    broker_proxy.go_down()
    event_ids = await _add_committed_events(session_factory, tables.outbox, routing_key, 5)

    try:
        assert await relay.publish_pending() == 0
        rows = await _outbox_rows(engine, tables.outbox)
        assert [row.attempts for row in rows] == [1, 1, 1, 1, 1]
        assert all(row.published_at is None for row in rows)
        assert all(row.last_error.startswith("cannot connect to the broker") for row in rows)
        assert all(row.next_attempt_at > row.occurred_at for row in rows)

        async def retried_again() -> bool:
            assert await relay.publish_pending() == 0
            rows = await _outbox_rows(engine, tables.outbox)
            return all(row.attempts >= 2 for row in rows)

        await wait_until(retried_again)
        rows = await _outbox_rows(engine, tables.outbox)
        assert all(row.published_at is None for row in rows)
        assert broker_proxy.refused >= 2
        assert await drain(queue) == []

        broker_proxy.come_up()
        published = 0

        async def everything_published() -> bool:
            nonlocal published
            published += await relay.publish_pending()
            return published >= len(event_ids)

        await wait_until(everything_published)
    finally:
        await relay.close()

    assert published == 5
    messages = await drain(queue)
    assert sorted(message.message_id or "" for message in messages) == sorted(
        str(event_id) for event_id in event_ids
    )
    rows = await _outbox_rows(engine, tables.outbox)
    assert all(row.published_at is not None for row in rows)


async def test_relay_republishes_after_its_connection_drops(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
    broker_proxy: BrokerProxy,
) -> None:
    queue = await capture_queue(routing_key)
    relay = OutboxRelay(engine, tables.outbox, broker_proxy.amqp_url, **FAST_RETRIES)
    try:
        [first] = await _add_committed_events(session_factory, tables.outbox, routing_key, 1)
        assert await relay.publish_pending() == 1

        broker_proxy.go_down()  # drops the relay's open connection
        [second] = await _add_committed_events(session_factory, tables.outbox, routing_key, 1)
        assert await relay.publish_pending() == 0
        [_, pending] = await _outbox_rows(engine, tables.outbox)
        assert pending.id == second
        assert pending.published_at is None
        assert pending.attempts == 1

        broker_proxy.come_up()

        async def second_published() -> bool:
            return await relay.publish_pending() == 1

        await wait_until(second_published)
    finally:
        await relay.close()

    messages = await drain(queue)
    assert [message.message_id for message in messages] == [str(first), str(second)]


async def test_two_relays_never_publish_the_same_row_twice(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
) -> None:
    queue = await capture_queue(routing_key)
    event_ids = await _add_committed_events(session_factory, tables.outbox, routing_key, 300)
    relays = [
        OutboxRelay(engine, tables.outbox, AMQP_URL, batch_size=10, poll_interval=0.05, name=name)
        for name in ("relay-a", "relay-b")
    ]
    runs = [asyncio.create_task(relay.run()) for relay in relays]

    async def nothing_pending() -> bool:
        async with engine.connect() as conn:
            pending = await conn.scalar(
                sa.select(sa.func.count()).where(tables.outbox.c.published_at.is_(None))
            )
        return pending == 0

    try:
        await wait_until(nothing_pending, within=30)
    finally:
        await asyncio.gather(*(relay.stop() for relay in relays))
        await asyncio.wait_for(asyncio.gather(*runs), timeout=10)

    messages = await drain(queue)
    message_ids = [message.message_id for message in messages]
    assert len(message_ids) == 300
    assert set(message_ids) == {str(event_id) for event_id in event_ids}
    rows = await _outbox_rows(engine, tables.outbox)
    assert {row.attempts for row in rows} == {0}


async def test_relay_deletes_published_rows_past_retention(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
) -> None:
    old, recent, unpublished = await _add_committed_events(
        session_factory, tables.outbox, routing_key, 3
    )
    outbox = tables.outbox
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == old)
            .values(published_at=sa.func.now() - sa.text("interval '8 days'"))
        )
        await conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == recent)
            .values(published_at=sa.func.now() - sa.text("interval '6 days'"))
        )

    relay = OutboxRelay(engine, outbox, AMQP_URL)
    assert await relay.purge_published() == 1
    rows = await _outbox_rows(engine, outbox)
    assert {row.id for row in rows} == {recent, unpublished}


async def test_relay_keeps_running_through_failing_passes(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
) -> None:
    queue = await capture_queue(routing_key)
    metadata = sa.MetaData()
    outbox = define_outbox_table(metadata, name=f"outbox_late_{uuid.uuid4().hex[:12]}")
    relay = OutboxRelay(engine, outbox, AMQP_URL, poll_interval=0.05, **FAST_RETRIES)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: relay.failed_passes >= 1)  # its table does not exist yet
        assert not running.done()
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        [event_id] = await _add_committed_events(session_factory, outbox, routing_key, 1)

        async def published() -> bool:
            return [row.published_at is not None for row in await _outbox_rows(engine, outbox)] == [
                True
            ]

        await wait_until(published)
    finally:
        await relay.stop()
        await asyncio.wait_for(running, timeout=10)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)

    assert [message.message_id for message in await drain(queue)] == [str(event_id)]


async def test_rows_the_broker_does_not_confirm_stay_unpublished_and_are_retried(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
    amqp_channel: AbstractChannel,
) -> None:
    # A full queue with reject-publish makes the broker nack what is routed to it.
    full = await amqp_channel.declare_queue(
        f"kit-test-full-{uuid.uuid4().hex[:12]}",
        exclusive=True,
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    await full.bind(await declare_events_exchange(amqp_channel), routing_key=routing_key)
    [event_id] = await _add_committed_events(session_factory, tables.outbox, routing_key, 1)
    relay = OutboxRelay(engine, tables.outbox, AMQP_URL, **FAST_RETRIES)
    try:
        assert await relay.publish_pending() == 0
        [row] = await _outbox_rows(engine, tables.outbox)
        assert row.published_at is None
        assert row.attempts == 1
        assert row.last_error.startswith("DeliveryError")

        await full.delete(if_unused=False, if_empty=False)
        queue = await capture_queue(routing_key)

        async def published() -> bool:
            return await relay.publish_pending() == 1

        await wait_until(published)
    finally:
        await relay.close()

    assert [message.message_id for message in await drain(queue)] == [str(event_id)]
    [row] = await _outbox_rows(engine, tables.outbox)
    assert row.published_at is not None
    assert row.attempts == 1


async def test_a_committed_row_wakes_the_relay_long_before_its_next_poll(
    engine: AsyncEngine,
    tables: MessagingTables,
    session_factory: async_sessionmaker[AsyncSession],
    routing_key: str,
    capture_queue: CaptureQueue,
) -> None:
    queue = await capture_queue(routing_key)
    received: list[str] = []

    async def published(count: int) -> bool:
        received.extend(message.message_id or "" for message in await drain(queue))
        return len(received) >= count

    # The poll a minute away: only the outbox's NOTIFY can bring the rows out in time.
    relay = OutboxRelay(engine, tables.outbox, AMQP_URL, poll_interval=60.0)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: relay.listening, within=5)
        await asyncio.sleep(0.2)  # the first pass (an empty outbox) is over

        async def rolled_back() -> None:
            async with session_factory() as session, session.begin():
                await add_event(session, tables.outbox, routing_key, {"n": "rolled back"})
                raise _AbortUnitOfWork

        with pytest.raises(_AbortUnitOfWork):
            await rolled_back()
        first = await _add_committed_events(session_factory, tables.outbox, routing_key, 2)
        await wait_until(lambda: published(2), within=3)
        assert received == [str(event_id) for event_id in first]
        # A rolled-back transaction notifies nobody; one transaction's rows, once.
        assert relay.wake_ups == 1

        received.clear()
        second = await _add_committed_events(session_factory, tables.outbox, routing_key, 1)
        await wait_until(lambda: published(1), within=3)
        assert received == [str(second[0])]
        assert relay.wake_ups == 2
    finally:
        await relay.stop()
        await running
    assert not relay.listening
