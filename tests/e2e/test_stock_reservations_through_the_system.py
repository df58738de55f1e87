"""Stock reservations in the running system: order events (published as the
orders service's relay will) reserve and commit stock in the catalogue's
consumer process, and the stock a client reads through the gateway follows,
its cached copy dropped by the catalogue's stock events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import httpx
import pytest

from emporium_kit.messaging import EventEnvelope

from .conftest import AMQP_URL, System

pytestmark = pytest.mark.e2e


async def _publish(system: System, routing_key: str, payload: dict[str, Any]) -> None:
    """To this system's order-events queue (the default exchange routes by its name),
    so no other system on this broker sees it."""
    envelope = EventEnvelope.new(routing_key, payload)
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                envelope.to_json(),
                message_id=str(envelope.id),
                type=envelope.type,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=system.catalog_orders_queue,
        )


async def _until_stock(
    api: httpx.AsyncClient, path: str, wanted: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """The anonymous (cacheable) read's stock once ``wanted``; well within the cache's TTL,
    so only an invalidation can make it change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        stock: dict[str, int] = (await api.get(path)).json()["stock"]
        if wanted(stock) or loop.time() > deadline:
            return stock
        await asyncio.sleep(0.1)


async def test_order_events_move_the_stock_clients_read_through_the_gateway(
    api: httpx.AsyncClient, admin_bearer: dict[str, str], system: System
) -> None:
    suffix = uuid.uuid4().hex[:8]
    category = await api.post(
        "/api/v1/categories",
        json={"name": f"Desks {suffix}", "slug": f"desks-{suffix}"},
        headers=admin_bearer,
    )
    assert category.status_code == 201, category.text
    created = await api.post(
        "/api/v1/products",
        json={
            "sku": f"DESK-{suffix}",
            "name": f"Walnut desk {suffix}",
            "description": "Solid walnut.",
            "price": {"amount": 49_900, "currency": "EUR"},
            "category_id": category.json()["id"],
            "attributes": {},
            "image_urls": [],
            "stock": 3,
        },
        headers=admin_bearer,
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    path = f"/api/v1/products/{product_id}"
    await api.get(path)
    cached = await api.get(path)
    assert cached.headers.get("x-cache") == "HIT", cached.headers

    order = str(uuid.uuid4())
    await _publish(
        system,
        "orders.order_placed.v1",
        {
            "order_id": order,
            "lines": [{"product_id": product_id, "quantity": 2}],
            "placed_at": "2026-12-02T14:00:00+00:00",
        },
    )
    reserved = await _until_stock(api, path, lambda s: s["reserved"] == 2)
    assert reserved == {"on_hand": 3, "reserved": 2, "available": 1}

    # Staff cannot set stock on hand below what the order holds.
    below = await api.put(f"{path}/stock", json={"quantity": 1}, headers=admin_bearer)
    assert below.status_code == 409, below.text
    assert below.headers["content-type"] == "application/problem+json"

    await _publish(
        system,
        "orders.order_paid.v1",
        {"order_id": order, "paid_at": "2026-12-02T14:01:00+00:00"},
    )
    sold = await _until_stock(api, path, lambda s: s["on_hand"] == 1)
    assert sold == {"on_hand": 1, "reserved": 0, "available": 1}

    # A cancellation after the payment is refused: the units stay sold.
    await _publish(
        system,
        "orders.order_cancelled.v1",
        {"order_id": order, "reason": "customer", "cancelled_at": "2026-12-02T14:02:00+00:00"},
    )
    await asyncio.sleep(1.0)
    after = await api.get(path, headers=admin_bearer)  # with a token: never from the cache
    assert after.json()["stock"] == {"on_hand": 1, "reserved": 0, "available": 1}
