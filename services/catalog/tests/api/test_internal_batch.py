"""``POST /internal/v1/products/batch``: what the orders service reads when placing an order."""

from __future__ import annotations

import uuid

import httpx

from conftest import Catalog


async def test_the_batch_reports_current_prices_availability_and_deleted_products(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    category = await catalog.category("Audio", slug="audio")
    live = await catalog.product(
        category["id"], sku="LIVE-1", name="Live", price={"amount": 700, "currency": "EUR"}, stock=4
    )
    gone = await catalog.product(category["id"], sku="GONE-1", name="Gone", stock=9)
    await client.delete(f"/api/v1/products/{gone['id']}", headers=catalog.headers)
    absent = str(uuid.uuid4())

    response = await client.post(
        "/internal/v1/products/batch", json={"ids": [absent, gone["id"], live["id"], live["id"]]}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "items": [
            {
                "id": gone["id"],
                "sku": "GONE-1",
                "name": "Gone",
                "price": {"amount": 1999, "currency": "USD"},
                "available": 9,
                "orderable": False,
                "deleted": True,
            },
            {
                "id": live["id"],
                "sku": "LIVE-1",
                "name": "Live",
                "price": {"amount": 700, "currency": "EUR"},
                "available": 4,
                "orderable": True,
                "deleted": False,
            },
        ],
        "missing": [absent],
    }


async def test_the_batch_takes_one_to_a_hundred_ids(client: httpx.AsyncClient) -> None:
    too_many = [str(uuid.uuid4()) for _ in range(101)]

    for body in ({"ids": []}, {"ids": too_many}, {"ids": ["nope"]}, {}, {"ids": [1]}):
        response = await client.post("/internal/v1/products/batch", json=body)
        assert response.status_code == 422, body

    hundred = await client.post("/internal/v1/products/batch", json={"ids": too_many[:100]})
    assert hundred.status_code == 200
    assert len(hundred.json()["missing"]) == 100
