"""``python -m catalog.consumers`` as a real process: it consumes order events,
its own outbox relay publishes the stock answers to RabbitMQ, and SIGTERM stops
it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import uuid

import httpx
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.adapters.db.tables import outbox
from catalog.settings import CatalogSettings
from catalog.use_cases.reserve_stock import STOCK_RESERVED
from emporium_kit.messaging import EventEnvelope, declare_events_exchange
from emporium_kit.messaging.consumer import retry_queue_name
from emporium_testkit.isolation import truncate_all, worker_id
from emporium_testkit.processes import ChildProcess, free_port
from emporium_testkit.proxy import TcpProxy

from .conftest import StockWorld, wait_until


async def test_the_consumer_process_reserves_and_publishes_the_answer_then_stops_on_sigterm(
    stock_engine: AsyncEngine,
    stock_channel: AbstractChannel,
    stock_settings: CatalogSettings,
    stock_database_url: str,
) -> None:
    await truncate_all(stock_database_url)
    queue = f"catalog.test-{worker_id()}-{uuid.uuid4().hex[:8]}-process-orders"
    settings = stock_settings.model_copy(update={"orders_queue": queue})
    world = StockWorld(stock_engine, stock_channel, settings, consumers=())
    product = await world.add_product(on_hand=2)
    order = uuid.uuid4()

    # What the relay publishes: stock_reserved on the events exchange.
    exchange = await declare_events_exchange(stock_channel)
    capture = await stock_channel.declare_queue(exclusive=True)
    await capture.bind(exchange, routing_key=STOCK_RESERVED)

    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    child = ChildProcess(
        "catalog.consumers",
        env={
            "CATALOG_DATABASE_URL": stock_database_url,
            "CATALOG_ORDERS_QUEUE": queue,
            "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
            "CATALOG_CONSUMERS_RUN_OUTBOX_RELAY": "true",
            "LOG_JSON": "true",
            "LOG_LEVEL": "INFO",
            "CATALOG_CONSUMERS_METRICS_PORT": str(port),
        },
    )
    try:
        # /metrics answers once the consumer is consuming.
        await asyncio.to_thread(child.wait_until_ready, f"{metrics}/metrics", 30)
        placed = await world.place(order, [(product, 2)])
        await world.wait_handled(placed)
        assert await world.status(order) == "reserved"
        assert await world.stock(product) == (2, 2)

        got: list[AbstractIncomingMessage] = []

        async def published() -> bool:
            while (message := await capture.get(no_ack=True, fail=False)) is not None:
                if json.loads(message.body)["payload"]["order_id"] == str(order):
                    got.append(message)
            return bool(got)

        await wait_until(published, within=15)
        envelope = EventEnvelope.from_json(got[0].body)
        assert envelope.type == STOCK_RESERVED
        assert envelope.payload["lines"] == [{"product_id": str(product), "quantity": 2}]

        # The relay marks a row published after the broker confirmed it, so the
        # message can arrive here a moment before its row is marked.
        async def all_marked() -> bool:
            async with stock_engine.connect() as conn:
                unpublished = await conn.scalar(
                    sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))
                )
            return unpublished == 0

        await wait_until(all_marked, within=15)
        async with httpx.AsyncClient() as http:
            exposed = (await http.get(f"{metrics}/metrics")).text
        assert (
            'catalog_stock_event_outcomes_total{event="order_placed",outcome="reserved"} 1.0'
            in exposed
        )

        child.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(child.wait, 15)
        assert code == 0, child.output()[-3000:]
        assert "catalog_consumers_stopped" in child.output()
    finally:
        child.stop()
        for name in (queue, retry_queue_name(queue), f"{queue}.dlq"):
            with contextlib.suppress(Exception):
                await stock_channel.queue_delete(name)


async def test_the_consumer_process_waits_for_rabbitmq_at_start_then_consumes(
    stock_engine: AsyncEngine,
    stock_channel: AbstractChannel,
    stock_settings: CatalogSettings,
    stock_database_url: str,
) -> None:
    """RabbitMQ unreachable when the process starts: it stays up and keeps trying,
    and consumes once the broker answers (a TCP proxy plays the outage)."""
    await truncate_all(stock_database_url)
    queue = f"catalog.test-{worker_id()}-{uuid.uuid4().hex[:8]}-late-orders"
    settings = stock_settings.model_copy(update={"orders_queue": queue})
    world = StockWorld(stock_engine, stock_channel, settings, consumers=())
    product = await world.add_product(on_hand=1)
    proxy = TcpProxy.to(settings.amqp_url, default_port=5672)
    await proxy.start()
    proxy.go_down()
    port = free_port()
    child = ChildProcess(
        "catalog.consumers",
        env={
            "AMQP_URL": proxy.url_for(settings.amqp_url),
            "CATALOG_DATABASE_URL": stock_database_url,
            "CATALOG_ORDERS_QUEUE": queue,
            "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
            "CATALOG_CONSUMERS_RUN_OUTBOX_RELAY": "false",
            "CATALOG_CONSUMERS_METRICS_PORT": str(port),
            "LOG_JSON": "true",
        },
    )
    try:
        await wait_until(lambda: _refused(proxy, at_least=2), within=20)
        with pytest.raises(subprocess.TimeoutExpired):  # still running, still trying
            child.wait(0.01)

        proxy.come_up()
        await asyncio.to_thread(child.wait_until_ready, f"http://127.0.0.1:{port}/metrics", 30)
        order = uuid.uuid4()
        await world.wait_handled(await world.place(order, [(product, 1)]))
        assert await world.status(order) == "reserved"
        assert "order_events_consumer_start_deferred" in child.output()
    finally:
        child.stop()
        await proxy.close()
        for name in (queue, retry_queue_name(queue), f"{queue}.dlq"):
            with contextlib.suppress(Exception):
                await stock_channel.queue_delete(name)


async def _refused(proxy: TcpProxy, *, at_least: int) -> bool:
    return proxy.refused >= at_least
