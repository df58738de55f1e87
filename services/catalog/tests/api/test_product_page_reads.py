"""The product page's read outside FastAPI's routing answers exactly as the route does."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from catalog.entrypoints.http import fast_reads, routes
from conftest import Catalog


@pytest.fixture
async def product(catalog: Catalog) -> dict[str, Any]:
    category = await catalog.category("Audio", slug="audio")
    return await catalog.product(category["id"], sku="HP-7", attributes={"colour": "black"})


@pytest.fixture
def route_reads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The product ids the FastAPI route read (the fast path reads through its own name)."""
    read: list[uuid.UUID] = []
    use_case = routes.get_product_use_case

    async def counted(ports: Any, product_id: uuid.UUID, **kwargs: Any) -> Any:
        read.append(product_id)
        return await use_case(ports, product_id, **kwargs)

    monkeypatch.setattr(routes, "get_product_use_case", counted)
    return read


async def test_a_plain_read_is_answered_without_the_route(
    client: httpx.AsyncClient, product: dict[str, Any], route_reads: list[uuid.UUID]
) -> None:
    response = await client.get(f"/api/v1/products/{product['id']}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    assert response.json() == product
    assert route_reads == []
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/products/{product_id}",service="catalog",status="200"' in metrics


@pytest.mark.parametrize(
    ("spelling", "query", "status"),
    [
        ("upper", "", 200),  # another spelling of the id
        ("plain", "?currency=USD", 200),  # a query: the route's parameters
        ("plain", "?unknown=1", 200),  # a parameter the route ignores
    ],
)
async def test_every_other_read_goes_to_the_route(
    client: httpx.AsyncClient,
    product: dict[str, Any],
    route_reads: list[uuid.UUID],
    spelling: str,
    query: str,
    status: int,
) -> None:
    product_id = product["id"].upper() if spelling == "upper" else product["id"]
    response = await client.get(f"/api/v1/products/{product_id}{query}")

    assert response.status_code == status
    assert response.json()["id"] == product["id"]
    assert route_reads == [uuid.UUID(product["id"])]


async def test_an_absent_product_and_a_bad_id_are_the_routes_problems(
    client: httpx.AsyncClient, route_reads: list[uuid.UUID]
) -> None:
    absent = uuid.uuid4()
    missing = await client.get(f"/api/v1/products/{absent}")
    malformed = await client.get("/api/v1/products/" + "x" * 36)

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    assert route_reads == [absent]  # read by the fast path, then again by the route
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"


async def test_an_error_of_the_fast_read_is_left_to_the_route(
    client: httpx.AsyncClient,
    product: dict[str, Any],
    route_reads: list[uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(*_: Any, **__: Any) -> Any:
        raise ConnectionResetError("lost")

    monkeypatch.setattr(fast_reads, "get_product", failing)
    response = await client.get(f"/api/v1/products/{product['id']}")

    assert response.status_code == 200
    assert response.json() == product
    assert route_reads == [uuid.UUID(product["id"])]
