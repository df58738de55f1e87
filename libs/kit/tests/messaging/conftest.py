"""Fixtures for the messaging tests: a real PostgreSQL database (created if missing),
fresh outbox/inbox tables and unique queues per test on the real RabbitMQ, and a TCP
proxy in front of RabbitMQ (see ``support.BrokerProxy``) to play an outage."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from emporium_kit.messaging import dead_letter_queue_name, declare_events_exchange
from emporium_kit.messaging.dead_letters import declare_dead_letters
from emporium_kit.messaging.tables import define_inbox_table, define_outbox_table

from .support import AMQP_URL, POSTGRES_URL, BrokerProxy, MessagingTables


async def _ensure_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            # Parallel workers may race to create it; the loser finds it there.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def engine() -> AsyncIterator[AsyncEngine]:
    await _ensure_database(POSTGRES_URL)
    engine = create_async_engine(POSTGRES_URL, pool_size=10, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tables(engine: AsyncEngine) -> AsyncIterator[MessagingTables]:
    """A fresh outbox and inbox for one test, under names no other test uses."""
    suffix = uuid.uuid4().hex[:12]
    metadata = sa.MetaData()
    created = MessagingTables(
        outbox=define_outbox_table(metadata, name=f"outbox_{suffix}"),
        inbox=define_inbox_table(metadata, name=f"inbox_{suffix}"),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield created
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def routing_key() -> str:
    """A routing key no other test (or service) publishes."""
    return f"kit_test_{uuid.uuid4().hex[:12]}.thing_happened.v1"


@pytest.fixture
async def amqp_channel() -> AsyncIterator[AbstractChannel]:
    connection: AbstractRobustConnection = await aio_pika.connect_robust(AMQP_URL, timeout=10)
    channel = await connection.channel()
    yield channel
    await connection.close()


@pytest.fixture
async def queue_names(amqp_channel: AbstractChannel) -> AsyncIterator[Callable[[], str]]:
    """Unique queue names; each one (and its retry and dead-letter queues) is deleted after."""
    names: list[str] = []

    def new_name() -> str:
        name = f"kit-test-{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    yield new_name
    for name in names:
        for queue in (name, dead_letter_queue_name(name), f"{name}.retry"):
            with contextlib.suppress(Exception):
                await amqp_channel.queue_delete(queue)


@pytest.fixture
async def capture_queue(
    amqp_channel: AbstractChannel,
) -> AsyncIterator[Callable[[str], Awaitable[AbstractQueue]]]:
    """A throwaway queue bound to the events exchange for the given routing key."""
    declared: list[AbstractQueue] = []

    async def bind(routing_key: str) -> AbstractQueue:
        exchange = await declare_events_exchange(amqp_channel)
        queue = await amqp_channel.declare_queue(
            f"kit-test-capture-{uuid.uuid4().hex[:12]}", durable=False, exclusive=True
        )
        await queue.bind(exchange, routing_key=routing_key)
        declared.append(queue)
        return queue

    yield bind
    for queue in declared:
        with contextlib.suppress(Exception):
            await queue.delete(if_unused=False, if_empty=False)


@pytest.fixture
async def broker_proxy() -> AsyncIterator[BrokerProxy]:
    amqp = urlsplit(AMQP_URL)
    proxy = BrokerProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def dead_letters(
    amqp_channel: AbstractChannel, queue_names: Callable[[], str]
) -> AbstractQueue:
    """A dead-letter list of this test's own (``DEAD_LETTERS_QUEUE`` for its consumers)."""
    _, queue = await declare_dead_letters(amqp_channel, queue_names())
    return queue
