"""The product page's read and the listing outside FastAPI's routing answer exactly as
their routes do."""

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


@pytest.mark.parametrize("query", ["", "?unknown=1", "?utm_source=mail&x"])
async def test_a_plain_read_is_answered_without_the_route(
    client: httpx.AsyncClient, product: dict[str, Any], route_reads: list[uuid.UUID], query: str
) -> None:
    response = await client.get(f"/api/v1/products/{product['id']}{query}")

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
        ("plain", "?currency=USD", 200),  # the route's parameter: a display price
        ("plain", "?unknown=1&currency=EUR", 200),
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


# --- the listing ---


@pytest.fixture
def route_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The listings the FastAPI route answered (the fast path lists through its own name)."""
    listed: list[str] = []
    listing = routes.product_listing

    async def counted(components: Any, parameters: Any, query: Any) -> Any:
        listed.append(str(query))
        return await listing(components, parameters, query)

    monkeypatch.setattr(routes, "product_listing", counted)
    return listed


@pytest.fixture
async def listed(catalog: Catalog) -> list[dict[str, Any]]:
    audio = await catalog.category("Audio", slug="audio")
    return [
        await catalog.product(
            audio["id"],
            sku=f"HP-{n}",
            name=f"Studio headphones {n}",
            price={"amount": 1000 * (n + 1), "currency": "USD"},
            attributes={"colour": "black" if n % 2 else "white"},
        )
        for n in range(5)
    ]


LISTINGS = [
    "",
    "?limit=2",
    "?q=headphones",
    "?q=headphnes&limit=3",
    "?category=audio&min_price=2000&max_price=4000&attr.colour=black",
    "?sort=price_desc&in_stock=false&unknown=1",
]


@pytest.mark.parametrize("query", LISTINGS)
async def test_a_listing_is_answered_without_the_route_as_the_route_answers_it(
    client: httpx.AsyncClient,
    listed: list[dict[str, Any]],
    route_listings: list[str],
    monkeypatch: pytest.MonkeyPatch,
    query: str,
) -> None:
    fast = await client.get(f"/api/v1/products{query}")
    assert route_listings == []

    async def refused(*_: Any) -> Any:
        raise RuntimeError("the fast path is off")

    monkeypatch.setattr(fast_reads, "product_listing", refused)
    routed = await client.get(f"/api/v1/products{query}")

    assert len(route_listings) == 1
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert fast.json()["items"]
    assert fast.json() == routed.json()
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/products",service="catalog",status="200"' in metrics


async def test_the_next_page_of_a_fast_listing_follows_its_cursor(
    client: httpx.AsyncClient, listed: list[dict[str, Any]], route_listings: list[str]
) -> None:
    seen: list[str] = []
    page = (await client.get("/api/v1/products", params={"limit": 2})).json()
    while True:
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = (
            await client.get("/api/v1/products", params={"limit": 2, "cursor": page["next_cursor"]})
        ).json()

    assert sorted(seen) == sorted(product["id"] for product in listed)
    assert route_listings == []


@pytest.mark.parametrize(
    ("query", "status", "listed_by_route"),
    [
        # refused by the parameter model: by the route's validation too, before its body
        ("?limit=0", 422, 0),
        ("?limit=abc", 422, 0),
        ("?q=", 422, 0),
        ("?sort=cheapest", 422, 0),
        # refused by the listing itself: the route lists and raises the problem
        ("?min_price=5000&max_price=1000", 422, 1),
        ("?attr.=black", 422, 1),
        ("?cursor=tampered", 400, 1),
    ],
)
async def test_a_refused_listing_is_the_routes_problem(
    client: httpx.AsyncClient,
    listed: list[dict[str, Any]],
    route_listings: list[str],
    query: str,
    status: int,
    listed_by_route: int,
) -> None:
    response = await client.get(f"/api/v1/products{query}")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert len(route_listings) == listed_by_route


async def test_an_error_of_the_fast_listing_is_left_to_the_route(
    client: httpx.AsyncClient,
    listed: list[dict[str, Any]],
    route_listings: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(*_: Any) -> Any:
        raise ConnectionResetError("lost")

    monkeypatch.setattr(fast_reads, "product_listing", failing)
    response = await client.get("/api/v1/products")

    assert response.status_code == 200
    assert len(response.json()["items"]) == len(listed)
    assert len(route_listings) == 1


async def test_a_head_is_answered_by_the_fast_reads_as_their_get_without_content(
    client: httpx.AsyncClient,
    product: dict[str, Any],
    route_reads: list[uuid.UUID],
    route_listings: list[str],
) -> None:
    for path in (f"/api/v1/products/{product['id']}", "/api/v1/products"):
        got = await client.get(path)
        head = await client.head(path)

        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"] != "0"
        assert head.headers["content-type"] == "application/json"
    assert route_reads == []
    assert route_listings == []
    metrics = (await client.get("/metrics")).text
    assert 'method="HEAD",route="/api/v1/products/{product_id}",service="catalog"' in metrics
    assert 'method="HEAD",route="/api/v1/products",service="catalog"' in metrics
