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


async def _publish(system: System, routing_key: str, payload: dict[str, Any]) -> str:
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
    return str(envelope.id)


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


async def _product(api: httpx.AsyncClient, staff: dict[str, str], stock: int) -> str:
    suffix = uuid.uuid4().hex[:8]
    category = await api.post(
        "/api/v1/categories",
        json={"name": f"Desks {suffix}", "slug": f"desks-{suffix}"},
        headers=staff,
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
            "stock": stock,
        },
        headers=staff,
    )
    assert created.status_code == 201, created.text
    product_id: str = created.json()["id"]
    return product_id


async def test_order_events_move_the_stock_clients_read_through_the_gateway(
    api: httpx.AsyncClient, admin_bearer: dict[str, str], system: System
) -> None:
    product_id = await _product(api, admin_bearer, stock=3)
    path = f"/api/v1/products/{product_id}"
    # Warm: served from the gateway's cache (once the product's own creation event,
    # which clears it too, has gone by).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (cached := await api.get(path)).headers.get("x-cache") != "HIT":
        assert loop.time() < deadline, cached.headers
        await asyncio.sleep(0.1)
    assert cached.json()["stock"] == {"on_hand": 3, "reserved": 0, "available": 3}

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


async def test_a_payment_the_catalogue_cannot_commit_is_listed_for_an_admin_and_replayed(
    api: httpx.AsyncClient, admin_bearer: dict[str, str], system: System
) -> None:
    """A payment for an order whose placement the catalogue has not handled is a
    dead letter in the ops list; replayed once the placement is in, it commits."""
    product_id = await _product(api, admin_bearer, stock=5)
    path = f"/api/v1/products/{product_id}"
    order = str(uuid.uuid4())
    paid = await _publish(
        system, "orders.order_paid.v1", {"order_id": order, "paid_at": "2026-12-02T14:01:00+00:00"}
    )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        listed = await api.get(
            "/api/v1/admin/dead-letters",
            params={"queue": system.catalog_orders_queue},
            headers=admin_bearer,
        )
        assert listed.status_code == 200, listed.text
        mine = [item for item in listed.json()["items"] if item["message_id"] == paid]
        if mine or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    [letter] = mine
    assert (letter["service"], letter["kind"], letter["name"]) == (
        "catalog",
        "event",
        "orders.order_paid.v1",
    )
    assert "ReservationNotFound" in letter["last_error"]

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
    assert reserved == {"on_hand": 5, "reserved": 2, "available": 3}

    replay = await api.post(
        f"/api/v1/admin/dead-letters/{letter['id']}/replay", headers=admin_bearer
    )
    assert replay.status_code == 202, replay.text
    sold = await _until_stock(api, path, lambda s: s["on_hand"] == 3)
    assert sold == {"on_hand": 3, "reserved": 0, "available": 3}
