"""The product routes of the contract: shape, CRUD, soft delete, stock, events, RBAC."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import Catalog
from emporium_kit.problems import problem_type

PRODUCT_KEYS = {
    "id", "sku", "name", "description", "price", "category_id", "attributes", "image_urls",
    "stock", "created_at", "updated_at",
}  # fmt: skip


async def _events(db: asyncpg.Connection, routing_key: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT payload FROM outbox WHERE routing_key = $1 ORDER BY occurred_at", routing_key
    )
    return [json.loads(row["payload"]) for row in rows]


@pytest.fixture
async def category(catalog: Catalog) -> dict[str, Any]:
    return await catalog.category("Audio", slug="audio")


async def test_a_created_product_has_exactly_the_contract_shape(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], db: asyncpg.Connection
) -> None:
    body = catalog.product_body(
        category["id"],
        sku="HP-1000",
        name="Wireless headphones",
        description="Over-ear, noise cancelling.",
        price={"amount": 12999, "currency": "EUR"},
        attributes={"colour": "black", "weight_g": 250, "foldable": True, "rating": 4.5},
        image_urls=["https://img.example.com/hp-1000.jpg"],
        stock=7,
    )

    response = await client.post("/api/v1/products", json=body, headers=catalog.headers)

    assert response.status_code == 201, response.text
    product = response.json()
    assert set(product) == PRODUCT_KEYS
    assert product["sku"] == "HP-1000"
    assert product["price"] == {"amount": 12999, "currency": "EUR"}
    assert product["attributes"] == {
        "colour": "black", "weight_g": 250, "foldable": True, "rating": 4.5,
    }  # fmt: skip
    assert product["image_urls"] == ["https://img.example.com/hp-1000.jpg"]
    assert product["stock"] == {"on_hand": 7, "reserved": 0, "available": 7}
    assert product["category_id"] == category["id"]
    assert product["created_at"].endswith("Z")
    assert datetime.fromisoformat(product["created_at"])
    fetched = await client.get(f"/api/v1/products/{product['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == product
    [event] = await _events(db, "catalog.product_created.v1")
    assert event["product_id"] == product["id"]
    assert event["sku"] == "HP-1000"
    assert event["price"] == {"amount": 12999, "currency": "EUR"}


async def test_a_taken_sku_is_409_until_its_product_is_deleted(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any]
) -> None:
    first = await catalog.product(category["id"], sku="DUP-1")

    again = await client.post(
        "/api/v1/products",
        json=catalog.product_body(category["id"], sku="DUP-1"),
        headers=catalog.headers,
    )
    assert again.status_code == 409
    assert again.json()["type"] == problem_type("sku-taken")

    await client.delete(f"/api/v1/products/{first['id']}", headers=catalog.headers)
    reused = await client.post(
        "/api/v1/products",
        json=catalog.product_body(category["id"], sku="DUP-1"),
        headers=catalog.headers,
    )
    assert reused.status_code == 201


async def test_a_category_that_does_not_exist_is_422(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/api/v1/products",
        json=catalog.product_body(str(uuid.uuid4())),
        headers=catalog.headers,
    )

    assert response.status_code == 422
    assert response.json()["type"] == problem_type("product-category-not-found")


async def test_patch_changes_only_the_fields_sent_and_records_an_event(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], db: asyncpg.Connection
) -> None:
    other = await catalog.category("Video", slug="video")
    product = await catalog.product(category["id"], name="Old name", stock=3)

    response = await client.patch(
        f"/api/v1/products/{product['id']}",
        json={
            "name": "New name",
            "price": {"amount": 500, "currency": "JPY"},
            "category_id": other["id"],
            "attributes": {"colour": "red"},
        },
        headers=catalog.headers,
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["name"] == "New name"
    assert changed["price"] == {"amount": 500, "currency": "JPY"}
    assert changed["category_id"] == other["id"]
    assert changed["attributes"] == {"colour": "red"}
    assert changed["description"] == product["description"]
    assert changed["sku"] == product["sku"]
    assert changed["stock"] == product["stock"]
    assert changed["updated_at"] > product["updated_at"]
    assert changed["created_at"] == product["created_at"]
    [event] = await _events(db, "catalog.product_updated.v1")
    assert event["product_id"] == product["id"]
    assert event["changed"] == ["attributes", "category_id", "name", "price"]
    assert event["name"] == "New name"


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "OTHER"},
        {"stock": 10},
        {"colour": "red"},
        {"name": None},
        {"price": None},
        {"category_id": None},
        {"name": ""},
        {"price": {"amount": -1, "currency": "USD"}},
    ],
)
async def test_patch_refuses_sku_stock_unknown_and_null_fields(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], body: dict[str, Any]
) -> None:
    product = await catalog.product(category["id"])

    response = await client.patch(
        f"/api/v1/products/{product['id']}", json=body, headers=catalog.headers
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    after = (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert after == product


async def test_a_deleted_product_is_gone_from_reads_and_listings(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], db: asyncpg.Connection
) -> None:
    kept = await catalog.product(category["id"], name="Kept headphones")
    gone = await catalog.product(category["id"], name="Gone headphones")

    deleted = await client.delete(f"/api/v1/products/{gone['id']}", headers=catalog.headers)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/api/v1/products/{gone['id']}")).status_code == 404
    listed = [p["id"] for p in (await catalog.listing()).json()["items"]]
    searched = [p["id"] for p in (await catalog.listing(q="headphones")).json()["items"]]
    assert listed == [kept["id"]]
    assert searched == [kept["id"]]
    again = await client.delete(f"/api/v1/products/{gone['id']}", headers=catalog.headers)
    patched = await client.patch(
        f"/api/v1/products/{gone['id']}", json={"name": "Back"}, headers=catalog.headers
    )
    stock = await client.put(
        f"/api/v1/products/{gone['id']}/stock", json={"quantity": 1}, headers=catalog.headers
    )
    assert (again.status_code, patched.status_code, stock.status_code) == (404, 404, 404)
    # The row stays (orders reference it), marked deleted.
    row = await db.fetchrow("SELECT deleted_at FROM products WHERE id = $1", uuid.UUID(gone["id"]))
    assert row is not None
    assert row["deleted_at"] is not None
    [event] = await _events(db, "catalog.product_deleted.v1")
    assert event["product_id"] == gone["id"]
    assert event["sku"] == gone["sku"]


async def test_absent_products_are_404_and_malformed_ids_422(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    assert (await client.get(f"/api/v1/products/{uuid.uuid4()}")).status_code == 404
    for method, path in [
        ("GET", "/api/v1/products/not-a-uuid"),
        ("DELETE", "/api/v1/products/1234"),
        ("PUT", "/api/v1/products/%27%20OR%201=1--/stock"),
    ]:
        response = await client.request(method, path, json={"quantity": 1}, headers=staff)
        assert response.status_code == 422, (method, path)
        assert response.json()["errors"][0]["loc"] == ["path", "product_id"]


async def test_stock_is_set_on_hand_and_never_below_reserved(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], db: asyncpg.Connection
) -> None:
    product = await catalog.product(category["id"], stock=10)
    path = f"/api/v1/products/{product['id']}/stock"

    raised = await client.put(path, json={"quantity": 25}, headers=catalog.headers)
    assert raised.status_code == 200, raised.text
    assert raised.json()["stock"] == {"on_hand": 25, "reserved": 0, "available": 25}

    # Orders hold 8 units (as the inventory's reservation would leave them).
    await db.execute("UPDATE products SET reserved = 8 WHERE id = $1", uuid.UUID(product["id"]))
    below = await client.put(path, json={"quantity": 7}, headers=catalog.headers)
    assert below.status_code == 409
    assert below.json()["type"] == problem_type("stock-below-reserved")
    exact = await client.put(path, json={"quantity": 8}, headers=catalog.headers)
    assert exact.json()["stock"] == {"on_hand": 8, "reserved": 8, "available": 0}
    events = await _events(db, "catalog.product_updated.v1")
    assert [(e["changed"], e["stock"]["on_hand"]) for e in events] == [
        (["stock"], 25), (["stock"], 8),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [{"quantity": -1}, {"quantity": 1.5}, {"quantity": "3"}, {"quantity": 2**31}, {}, {"q": 1}],
)
async def test_bad_stock_bodies_are_422(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any], body: dict[str, Any]
) -> None:
    product = await catalog.product(category["id"], stock=2)

    response = await client.put(
        f"/api/v1/products/{product['id']}/stock", json=body, headers=catalog.headers
    )

    assert response.status_code == 422


async def test_product_changes_need_catalog_write(
    catalog: Catalog,
    client: httpx.AsyncClient,
    category: dict[str, Any],
    customer: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    product = await catalog.product(category["id"])
    calls = [
        ("POST", "/api/v1/products", catalog.product_body(category["id"])),
        ("PATCH", f"/api/v1/products/{product['id']}", {"name": "Hacked"}),
        ("DELETE", f"/api/v1/products/{product['id']}", None),
        ("PUT", f"/api/v1/products/{product['id']}/stock", {"quantity": 0}),
    ]
    for method, path, body in calls:
        anonymous = await client.request(method, path, json=body)
        as_customer = await client.request(method, path, json=body, headers=customer)
        assert anonymous.status_code == 401, (method, path)
        assert as_customer.status_code == 403, (method, path)
        assert as_customer.json()["type"] == problem_type("forbidden")
    assert (await client.get(f"/api/v1/products/{product['id']}")).json() == product
    assert await db.fetchval("SELECT count(*) FROM products") == 1


async def test_reads_need_no_token(
    catalog: Catalog, client: httpx.AsyncClient, category: dict[str, Any]
) -> None:
    product = await catalog.product(category["id"])

    assert (await client.get(f"/api/v1/products/{product['id']}")).status_code == 200
    assert (await client.get("/api/v1/products")).status_code == 200
    assert (await client.get("/api/v1/categories")).status_code == 200
