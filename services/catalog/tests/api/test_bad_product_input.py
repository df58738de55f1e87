"""Hostile or malformed product bodies are 4xx problem documents and change nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from conftest import Catalog


@pytest.fixture
async def category_id(catalog: Catalog) -> str:
    return str((await catalog.category("Audio", slug="audio"))["id"])


BAD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("negative price", {"price": {"amount": -1, "currency": "USD"}}),
    ("float price", {"price": {"amount": 19.99, "currency": "USD"}}),
    ("boolean price", {"price": {"amount": True, "currency": "USD"}}),
    ("string price", {"price": {"amount": "1999", "currency": "USD"}}),
    ("price beyond 2**53", {"price": {"amount": 2**53, "currency": "USD"}}),
    ("bare number price", {"price": 1999}),
    ("unknown currency", {"price": {"amount": 100, "currency": "ABC"}}),
    ("lower-case currency", {"price": {"amount": 100, "currency": "usd"}}),
    ("currency without minor unit", {"price": {"amount": 100, "currency": "XAU"}}),
    ("extra price field", {"price": {"amount": 100, "currency": "USD", "tax": 1}}),
    ("nested attribute", {"attributes": {"size": {"w": 1, "h": 2}}}),
    ("list attribute", {"attributes": {"colours": ["red", "blue"]}}),
    ("null attribute", {"attributes": {"colour": None}}),
    ("too many attributes", {"attributes": {f"k{n}": n for n in range(51)}}),
    ("huge attribute value", {"attributes": {"blurb": "x" * 501}}),
    ("huge attribute name", {"attributes": {"k" * 65: 1}}),
    ("empty attribute name", {"attributes": {"": 1}}),
    ("huge attribute number", {"attributes": {"n": 10**30}}),
    ("attributes not an object", {"attributes": ["a"]}),
    ("http image", {"image_urls": ["http://img.example.com/a.jpg"]}),
    ("javascript image", {"image_urls": ["javascript:alert(1)"]}),
    ("image without host", {"image_urls": ["https:///a.jpg"]}),
    ("eleven images", {"image_urls": [f"https://img.example.com/{n}.jpg" for n in range(11)]}),
    ("negative stock", {"stock": -1}),
    ("float stock", {"stock": 1.5}),
    ("string stock", {"stock": "3"}),
    ("stock beyond integer", {"stock": 2**31}),
    ("empty name", {"name": ""}),
    ("blank name", {"name": "   "}),
    ("name with NUL", {"name": "bad\x00name"}),
    ("huge name", {"name": "n" * 201}),
    ("huge description", {"description": "d" * 5001}),
    ("sku with spaces", {"sku": "SKU 1"}),
    ("SQL-looking sku", {"sku": "'; DROP TABLE products; --"}),
    ("malformed category", {"category_id": "not-a-uuid"}),
    ("unknown field", {"colour": "red"}),
]


@pytest.mark.parametrize(("why", "fields"), BAD_FIELDS, ids=[why for why, _ in BAD_FIELDS])
async def test_a_bad_product_is_422_and_stores_nothing(
    catalog: Catalog,
    client: httpx.AsyncClient,
    category_id: str,
    db: asyncpg.Connection,
    why: str,
    fields: dict[str, Any],
) -> None:
    body = {**catalog.product_body(category_id), **fields}

    response = await client.post("/api/v1/products", json=body, headers=catalog.headers)

    assert response.status_code == 422, (why, response.text)
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 422
    assert problem["errors"], problem
    assert await db.fetchval("SELECT count(*) FROM products") == 0
    assert (
        await db.fetchval("SELECT count(*) FROM outbox WHERE routing_key LIKE 'catalog.product%'")
        == 0
    )


@pytest.mark.parametrize("missing", ["sku", "name", "price", "category_id"])
async def test_a_required_field_missing_is_422(
    catalog: Catalog, client: httpx.AsyncClient, category_id: str, missing: str
) -> None:
    body = catalog.product_body(category_id)
    del body[missing]

    response = await client.post("/api/v1/products", json=body, headers=catalog.headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", missing]


async def test_good_edge_values_are_accepted(
    catalog: Catalog, client: httpx.AsyncClient, category_id: str
) -> None:
    body = catalog.product_body(
        category_id,
        price={"amount": 0, "currency": "JPY"},
        attributes={f"k{n}": n for n in range(50)} | {"k0": "x" * 500, "k1": -2.5},
        image_urls=[f"https://img.example.com:8443/{n}.jpg?w=100#top" for n in range(10)],
        stock=0,
        name="Ünïcødé naïve café ヘッドホン",
        description="Line one.\nLine two.\tTabbed.",
    )

    response = await client.post("/api/v1/products", json=body, headers=catalog.headers)

    assert response.status_code == 201, response.text
    assert response.json()["attributes"]["k1"] == -2.5
    assert len(response.json()["image_urls"]) == 10


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"sku": ', "application/json", 400),
        (b'{"price": {"amount": NaN, "currency": "USD"}}', "application/json", 422),
        (b"sku=1", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_malformed_bodies_are_4xx(
    catalog: Catalog, client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/api/v1/products",
        content=content,
        headers={**catalog.headers, "Content-Type": content_type},
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_attribute_nan_in_json_is_422(
    catalog: Catalog, client: httpx.AsyncClient, category_id: str
) -> None:
    raw = (
        '{"sku": "N-1", "name": "N", "price": {"amount": 1, "currency": "USD"}, '
        f'"category_id": "{category_id}", "attributes": {{"x": NaN}}}}'
    )

    response = await client.post(
        "/api/v1/products",
        content=raw.encode(),
        headers={**catalog.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "slug": "Not A Slug"},
        {"name": "x", "slug": "-dash"},
        {"name": "", "slug": "ok"},
        {"name": "x", "slug": "ok", "parent_id": "nope"},
        {"name": "x"},
        {"name": "x", "slug": "ok", "extra": 1},
        {"name": "x" * 101, "slug": "ok"},
    ],
)
async def test_bad_categories_are_422(
    client: httpx.AsyncClient, staff: dict[str, str], body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/categories", json=body, headers=staff)

    assert response.status_code == 422, response.text
