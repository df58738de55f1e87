"""Staff stock changes meet reservations: the product read shows what orders
hold, and ``PUT /products/{id}/stock`` below the reserved count is 409 (the
reservations made by the real order-events consumer on the API's database)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractChannel

from catalog.consumers import build_order_events_consumer
from catalog.settings import CatalogSettings
from emporium_kit.database import DatabaseSettings, create_engine
from emporium_kit.problems import problem_type

from .conftest import StockWorld


@pytest.fixture
async def world(
    settings: CatalogSettings,
    database_url: str,
    stock_channel: AbstractChannel,
    stock_settings: CatalogSettings,
    client: httpx.AsyncClient,  # the app first: it truncates the API's database
) -> AsyncIterator[StockWorld]:
    """The order-events consumer on the API tests' database, fed from this run's queue."""
    consumer_settings = settings.model_copy(
        update={
            "orders_queue": stock_settings.orders_queue,
            "dead_letters_queue": stock_settings.dead_letters_queue,
            "consumer_max_attempts": 1,
        }
    )
    engine = create_engine(
        DatabaseSettings(url=database_url, pool_size=2, max_overflow=0),
        application_name="catalog-stock-api-tests",
    )
    consumer = build_order_events_consumer(consumer_settings, engine)
    await consumer.start()
    try:
        yield StockWorld(engine, stock_channel, consumer_settings, [consumer])
    finally:
        await consumer.stop()
        await engine.dispose()
        queue = await stock_channel.declare_queue(stock_settings.orders_queue, passive=True)
        await queue.purge()


async def _product(client: httpx.AsyncClient, staff: dict[str, str], stock: int) -> dict[str, Any]:
    category = await client.post(
        "/api/v1/categories", json={"name": "Desks", "slug": "desks"}, headers=staff
    )
    assert category.status_code == 201, category.text
    created = await client.post(
        "/api/v1/products",
        json={
            "sku": "DESK-1",
            "name": "Walnut desk",
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
    product: dict[str, Any] = created.json()
    return product


async def test_stock_cannot_be_set_below_what_orders_reserved(
    world: StockWorld, client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await _product(client, staff, stock=5)
    product_id = uuid.UUID(product["id"])
    order = uuid.uuid4()
    await world.wait_handled(await world.place(order, [(product_id, 3)]))

    read = await client.get(f"/api/v1/products/{product_id}")
    assert read.status_code == 200, read.text
    assert read.json()["stock"] == {"on_hand": 5, "reserved": 3, "available": 2}

    below = await client.put(
        f"/api/v1/products/{product_id}/stock", json={"quantity": 2}, headers=staff
    )
    assert below.status_code == 409, below.text
    assert below.headers["content-type"].startswith("application/problem+json")
    assert below.json()["type"] == problem_type("stock-below-reserved")
    assert await world.stock(product_id) == (5, 3)

    at = await client.put(
        f"/api/v1/products/{product_id}/stock", json={"quantity": 3}, headers=staff
    )
    assert at.status_code == 200, at.text
    assert at.json()["stock"] == {"on_hand": 3, "reserved": 3, "available": 0}

    # Once the order is cancelled, the units are no longer held: 0 is allowed.
    await world.wait_handled(await world.cancel(order))
    emptied = await client.put(
        f"/api/v1/products/{product_id}/stock", json={"quantity": 0}, headers=staff
    )
    assert emptied.status_code == 200, emptied.text
    assert emptied.json()["stock"] == {"on_hand": 0, "reserved": 0, "available": 0}
