"""The catalogue through the gateway, as a shop's staff and its customers use it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


async def _staff_creates_a_product(
    api: httpx.AsyncClient, staff: dict[str, str], **fields: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    category = await api.post(
        "/api/v1/categories",
        json={"name": f"Audio {suffix}", "slug": f"audio-{suffix}"},
        headers=staff,
    )
    assert category.status_code == 201, category.text
    body = {
        "sku": f"E2E-{suffix}",
        "name": f"Wireless headphones {suffix}",
        "description": "Over-ear, noise cancelling.",
        "price": {"amount": 12999, "currency": "EUR"},
        "category_id": category.json()["id"],
        "attributes": {"colour": "black"},
        "image_urls": ["https://img.example.com/e2e.jpg"],
        "stock": 4,
        **fields,
    }
    product = await api.post("/api/v1/products", json=body, headers=staff)
    assert product.status_code == 201, product.text
    return category.json(), product.json()


async def test_staff_create_a_category_and_a_product_that_anyone_lists_and_searches(
    api: httpx.AsyncClient, admin_bearer: dict[str, str]
) -> None:
    category, product = await _staff_creates_a_product(api, admin_bearer)

    tree = await api.get("/api/v1/categories")
    listed = await api.get("/api/v1/products", params={"category": category["slug"]})
    searched = await api.get("/api/v1/products", params={"q": product["name"]})
    typo = await api.get(
        "/api/v1/products",
        params={"q": "headphnes", "category": category["id"], "attr.colour": "black"},
    )
    read = await api.get(f"/api/v1/products/{product['id']}")

    assert tree.status_code == 200
    assert category["id"] in {node["id"] for node in tree.json()}
    assert [item["id"] for item in listed.json()["items"]] == [product["id"]]
    assert searched.json()["items"][0]["id"] == product["id"]
    assert [item["id"] for item in typo.json()["items"]] == [product["id"]]
    assert read.status_code == 200
    assert read.json() == product
    assert read.json()["stock"] == {"on_hand": 4, "reserved": 0, "available": 4}
    assert read.headers["x-request-id"]


async def test_a_cached_product_read_is_invalidated_by_an_update(
    api: httpx.AsyncClient, admin_bearer: dict[str, str]
) -> None:
    _, product = await _staff_creates_a_product(api, admin_bearer)
    path = f"/api/v1/products/{product['id']}"
    loop = asyncio.get_running_loop()
    # Served from the cache once the events of its own creation have cleared it.
    deadline = loop.time() + 10
    while True:
        cached = await api.get(path)
        if cached.headers.get("x-cache") == "HIT" or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert cached.headers.get("x-cache") == "HIT", cached.headers
    assert cached.json()["name"] == product["name"]

    patched = await api.patch(path, json={"name": "Renamed headphones"}, headers=admin_bearer)
    assert patched.status_code == 200, patched.text

    # The catalogue's product_updated event reaches the gateway through RabbitMQ, well
    # before the cached entry would expire (GATEWAY_CACHE_TTL_SECONDS, 30).
    deadline = loop.time() + 10
    while True:
        seen = await api.get(path)
        if seen.json()["name"] == "Renamed headphones" or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert seen.json()["name"] == "Renamed headphones"
    assert seen.json()["updated_at"] == patched.json()["updated_at"]


async def test_stock_and_deletion_through_the_gateway(
    api: httpx.AsyncClient, admin_bearer: dict[str, str]
) -> None:
    _, product = await _staff_creates_a_product(api, admin_bearer)
    path = f"/api/v1/products/{product['id']}"

    stock = await api.put(f"{path}/stock", json={"quantity": 11}, headers=admin_bearer)
    deleted = await api.delete(path, headers=admin_bearer)
    after = await api.get(path, headers=admin_bearer)

    assert stock.status_code == 200
    assert stock.json()["stock"]["on_hand"] == 11
    assert deleted.status_code == 204
    assert after.status_code == 404
    assert after.headers["content-type"] == "application/problem+json"


async def test_customers_and_anonymous_callers_cannot_change_the_catalogue(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    customer = await shopper("catalogue")
    body = {"name": "Nope", "slug": f"nope-{uuid.uuid4().hex[:8]}"}

    anonymous = await api.post("/api/v1/categories", json=body)
    as_customer = await api.post("/api/v1/categories", json=body, headers=customer.auth)

    assert anonymous.status_code == 401
    assert as_customer.status_code == 403
    slugs = {node["slug"] for node in (await api.get("/api/v1/categories")).json()}
    assert body["slug"] not in slugs


async def test_bad_input_is_a_problem_document_through_the_gateway(
    api: httpx.AsyncClient,
) -> None:
    for params in ({"q": "x" * 10_000}, {"limit": 0}, {"cursor": "tampered.cursor"}):
        response = await api.get("/api/v1/products", params=params)
        assert response.status_code in (400, 414, 422), (params, response.status_code)
        if response.status_code != 414:
            assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/api/v1/products/not-a-uuid")).status_code == 422


async def test_the_internal_batch_read_is_not_routed_by_the_gateway(
    api: httpx.AsyncClient, system: Any
) -> None:
    response = await api.post("/internal/v1/products/batch", json={"ids": [str(uuid.uuid4())]})
    async with httpx.AsyncClient(base_url=system.catalog) as catalog:
        direct = await catalog.post(
            "/internal/v1/products/batch", json={"ids": [str(uuid.uuid4())]}
        )

    assert response.status_code == 404
    assert direct.status_code == 200


async def test_the_merged_document_has_the_catalogue_operations_and_not_the_internal_ones(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]

    assert not any(path.startswith("/internal") for path in paths)
    listing = paths["/api/v1/products"]["get"]
    assert listing["operationId"] == "list_products_api_v1_products_get"
    assert {p["name"] for p in listing["parameters"]} >= {"q", "category", "sort", "cursor"}
    create = paths["/api/v1/products"]["post"]
    assert create["x-required-permission"] == "catalog:write"
    assert "requestBody" in create
    stock = paths["/api/v1/products/{product_id}/stock"]["put"]
    assert stock["x-required-permission"] == "catalog:write"
    assert "ProductOut" in document["components"]["schemas"]
