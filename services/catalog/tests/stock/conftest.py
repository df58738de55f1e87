"""Fixtures of the stock reservation tests: a migrated catalogue database of their
own per xdist worker (``emporium_catalog_stock_test_<worker>``, apart from the
API tests' one), an order-events queue and a dead-letters queue of this run's own
on the real RabbitMQ, and the real consumer (two replicas, as two processes
would be) started per test.

Events are published the way the orders service's relay will: an
:class:`EventEnvelope` as the body, its id as the AMQP message id, persistent,
with publisher confirms. They go straight to this run's queue through the
default exchange (which routes by queue name), so no other system on this
broker (``make run``, another test run) sees them; one test goes through the
topic exchange to check the queue's bindings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aio_pika
import jsonschema
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.adapters.db.reservations import stock_reservations
from catalog.adapters.db.tables import inbox, outbox, products
from catalog.consumers import build_order_events_consumer
from catalog.entrypoints.consumers.order_events import (
    CONSUMER_NAME,
    ORDER_CANCELLED,
    ORDER_PAID,
    ORDER_PLACED,
)
from catalog.settings import CatalogSettings
from emporium_kit.database import DatabaseSettings, create_engine
from emporium_kit.logging import configure_logging
from emporium_kit.messaging import EXCHANGE, EventEnvelope, JSONValue, dead_letter_queue_name
from emporium_kit.messaging.consumer import EventConsumer, retry_queue_name
from emporium_kit.messaging.dead_letters import DeadLetter, declare_dead_letters
from emporium_testkit.isolation import migrate_fresh, truncate_all, worker_database_url, worker_id

SERVICE_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = SERVICE_ROOT.parents[1] / "contracts" / "events"
AMQP_URL = CatalogSettings().amqp_url


ORDER_CONTRACTS = {
    ORDER_PLACED: "order_placed.v1.json",
    ORDER_PAID: "order_paid.v1.json",
    ORDER_CANCELLED: "order_cancelled.v1.json",
}


def contract(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS / name).read_text())
    return schema


@pytest.fixture(scope="session")
def stock_database_url() -> str:
    url = worker_database_url("emporium_catalog_stock")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture(scope="session")
async def stock_engine(stock_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        DatabaseSettings(url=stock_database_url, pool_size=16, max_overflow=16),
        application_name="catalog-stock-tests",
    )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def stock_amqp() -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(AMQP_URL, timeout=10)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def stock_channel(stock_amqp: AbstractRobustConnection) -> AsyncIterator[AbstractChannel]:
    opened = await stock_amqp.channel(publisher_confirms=True)
    yield opened
    with contextlib.suppress(Exception):
        await opened.close()


@pytest.fixture(scope="session")
async def stock_queues(stock_channel: AbstractChannel) -> AsyncIterator[dict[str, str]]:
    """This run's order-events queue and dead-letters queue, deleted at the end."""
    prefix = f"catalog.test-{worker_id()}-{uuid.uuid4().hex[:8]}"
    names = {"orders": f"{prefix}-orders", "dead_letters": f"{prefix}-dead-letters"}
    await declare_dead_letters(stock_channel, names["dead_letters"])
    yield names
    orders = names["orders"]
    for name in (orders, retry_queue_name(orders), dead_letter_queue_name(orders)):
        with contextlib.suppress(Exception):
            await stock_channel.queue_delete(name)
    with contextlib.suppress(Exception):
        await stock_channel.queue_delete(names["dead_letters"])


@pytest.fixture(scope="session")
def stock_settings(stock_database_url: str, stock_queues: dict[str, str]) -> CatalogSettings:
    return CatalogSettings(
        database_url=stock_database_url,
        db_pool_size=20,
        db_max_overflow=10,
        orders_queue=stock_queues["orders"],
        dead_letters_queue=stock_queues["dead_letters"],
        consumer_prefetch=16,
        consumer_max_attempts=3,
        consumer_retry_base_seconds=0.05,
        consumer_retry_max_seconds=0.2,
        consumers_run_outbox_relay=False,
        log_json=True,
    )


class StockWorld:
    """Products in the database, events on the queue, and what came of them."""

    def __init__(
        self,
        engine: AsyncEngine,
        channel: AbstractChannel,
        settings: CatalogSettings,
        consumers: Sequence[EventConsumer],
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.settings = settings
        self.consumers = consumers
        self.queue = settings.orders_queue

    # -- products ---------------------------------------------------------------------

    async def add_product(self, on_hand: int, *, deleted: bool = False) -> uuid.UUID:
        product_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(products).values(
                    id=product_id,
                    sku=f"SKU-{product_id.hex[:12]}",
                    name="Walnut desk",
                    description="A solid walnut desk.",
                    price_amount=19_900,
                    currency="EUR",
                    on_hand=on_hand,
                    deleted_at=sa.func.now() if deleted else None,
                )
            )
        return product_id

    async def stock(self, product_id: uuid.UUID) -> tuple[int, int]:
        """(on_hand, reserved) of the product now."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(products.c.on_hand, products.c.reserved).where(
                        products.c.id == product_id
                    )
                )
            ).one()
        return row.on_hand, row.reserved

    # -- events -------------------------------------------------------------------------

    async def publish(self, envelope: EventEnvelope, *, through_topic: bool = False) -> None:
        message = aio_pika.Message(
            body=envelope.to_json(),
            message_id=str(envelope.id),
            type=envelope.type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(envelope.headers),
        )
        if through_topic:
            exchange = await self.channel.get_exchange(EXCHANGE)
            await exchange.publish(message, routing_key=envelope.type)
        else:
            await self.channel.default_exchange.publish(message, routing_key=self.queue)

    async def send(
        self, routing_key: str, payload: dict[str, JSONValue], *, valid: bool = True
    ) -> EventEnvelope:
        """Publish an order event; ``valid`` ones are checked against their contract
        first (what the orders service will publish, the consumer must take)."""
        if valid:
            schema = contract(ORDER_CONTRACTS[routing_key])
            jsonschema.validate(payload, schema, format_checker=jsonschema.FormatChecker())
        envelope = EventEnvelope.new(routing_key, payload)
        await self.publish(envelope)
        return envelope

    async def place(
        self, order_id: uuid.UUID, lines: Sequence[tuple[uuid.UUID, int]]
    ) -> EventEnvelope:
        return await self.send(
            ORDER_PLACED,
            {
                "order_id": str(order_id),
                "user_id": str(uuid.uuid4()),
                "lines": [{"product_id": str(p), "quantity": q} for p, q in lines],
                "placed_at": "2026-12-02T14:00:00+00:00",
            },
        )

    async def pay(self, order_id: uuid.UUID) -> EventEnvelope:
        return await self.send(
            ORDER_PAID,
            {"order_id": str(order_id), "paid_at": "2026-12-02T14:01:00+00:00"},
        )

    async def cancel(self, order_id: uuid.UUID, reason: str = "customer") -> EventEnvelope:
        return await self.send(
            ORDER_CANCELLED,
            {
                "order_id": str(order_id),
                "reason": reason,
                "cancelled_at": "2026-12-02T14:02:00+00:00",
            },
        )

    # -- outcomes -----------------------------------------------------------------------

    async def status(self, order_id: uuid.UUID) -> str | None:
        async with self.engine.connect() as conn:
            status: str | None = await conn.scalar(
                sa.select(stock_reservations.c.status).where(
                    stock_reservations.c.order_id == order_id
                )
            )
        return status

    async def statuses(self, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(stock_reservations.c.order_id, stock_reservations.c.status).where(
                    stock_reservations.c.order_id.in_(order_ids)
                )
            )
        return {row.order_id: row.status for row in rows}

    async def events(self, routing_key: str, order_id: uuid.UUID | None = None) -> list[Any]:
        """Payloads of the outbox rows with ``routing_key`` (of ``order_id``), oldest first."""
        query = sa.select(outbox.c.payload).where(outbox.c.routing_key == routing_key)
        if order_id is not None:
            query = query.where(outbox.c.payload["order_id"].astext == str(order_id))
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(outbox.c.occurred_at))
        return [row.payload for row in rows]

    async def handled(self, envelope: EventEnvelope) -> bool:
        """The event's inbox row committed (with its effect)."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(sa.func.count()).where(
                    inbox.c.consumer == CONSUMER_NAME, inbox.c.message_id == envelope.id
                )
            )
        return found == 1

    async def wait_handled(self, *envelopes: EventEnvelope, within: float = 15.0) -> None:
        async def all_handled() -> bool:
            return all([await self.handled(envelope) for envelope in envelopes])

        await wait_until(all_handled, within=within)

    async def settled(self, *, within: float = 15.0) -> None:
        """Wait until nothing is queued, waiting for a retry, or being handled, for a while."""
        quiet = 0

        async def idle() -> bool:
            nonlocal quiet
            counts = [
                (await self.channel.declare_queue(name, passive=True)).declaration_result
                for name in (self.queue, retry_queue_name(self.queue))
            ]
            busy = any(c.message_count for c in counts) or any(
                consumer.in_flight for consumer in self.consumers
            )
            quiet = 0 if busy else quiet + 1
            return quiet >= 5

        await wait_until(idle, within=within, interval=0.05)

    async def dead_letter(self, message_id: uuid.UUID, *, within: float = 15.0) -> DeadLetter:
        """The dead letter of the message ``message_id``, once it arrived."""
        queue: AbstractQueue = await self.channel.declare_queue(
            self.settings.dead_letters_queue, passive=True
        )
        found: list[DeadLetter] = []

        async def arrived() -> bool:
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                letter = DeadLetter.model_validate_json(message.body)
                if letter.message_id == str(message_id):
                    found.append(letter)
            return bool(found)

        await wait_until(arrived, within=within)
        return found[0]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float = 15.0, interval: float = 0.05
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(interval)


@pytest.fixture
async def stock(
    stock_engine: AsyncEngine,
    stock_channel: AbstractChannel,
    stock_settings: CatalogSettings,
    stock_database_url: str,
) -> AsyncIterator[StockWorld]:
    """A clean database and two running replicas of the order-events consumer."""
    await truncate_all(stock_database_url)
    # As the process logs (LOG_JSON): the console renderer's rich tracebacks take
    # long enough to stall the event loop while its transactions hold row locks.
    configure_logging("catalog-consumers", level="INFO", json=True)
    consumers = [build_order_events_consumer(stock_settings, stock_engine) for _ in range(2)]
    for consumer in consumers:
        await consumer.start()
    try:
        yield StockWorld(stock_engine, stock_channel, stock_settings, consumers)
    finally:
        for consumer in consumers:
            await consumer.stop()
        # What a test left on the queue (a message it expected to be refused) is no
        # business of the next one.
        queue = await stock_channel.declare_queue(stock_settings.orders_queue, passive=True)
        await queue.purge()


def payload_lines(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = payload["lines"]
    return lines
