"""Fixtures for the catalogue service: a migrated database per xdist worker, a JWKS
stand-in for the users service, staff and customer tokens, and the ASGI app driven
by httpx.

The app runs with its outbox relay off: API tests read the outbox rows an action
committed (the relay's publishing is the kit's, tested there and end to end).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from catalog.main import create_app
from catalog.settings import CatalogSettings
from emporium_testkit.isolation import migrate_fresh, redis_url, truncate_all, worker_database_url

# The test kit (JWKS stand-in, keys, tokens) lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from catalog_testkit import JwksStandIn, SigningKey

SERVICE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def database_url() -> str:
    url = worker_database_url("emporium_catalog")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="session")
def jwks(signing_key: SigningKey) -> Iterator[JwksStandIn]:
    stand_in = JwksStandIn([signing_key])
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, jwks: JwksStandIn) -> CatalogSettings:
    return CatalogSettings(
        database_url=database_url,
        users_url=jwks.url,
        jwks_min_refresh_seconds=0,
        run_outbox_relay=False,
        # A Redis database of this worker's own; rates only from what a test stores.
        redis_url=redis_url(1),
        fx_fetch_when_empty=False,
        log_json=True,
    )


@pytest.fixture
async def app(settings: CatalogSettings, database_url: str) -> AsyncIterator[FastAPI]:
    await truncate_all(database_url)
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as http:
        yield http


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to this worker's database, to look at what the app committed."""
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    yield conn
    await conn.close()


@pytest.fixture
def staff(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.staff_headers()


@pytest.fixture
def customer(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.customer_headers()


class Catalog:
    """Drives the catalogue routes the way a staff client does."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.http = http
        self.headers = headers
        self._count = 0

    async def category(self, name: str = "Audio", *, slug: str | None = None,
                       parent_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        self._count += 1
        body: dict[str, Any] = {"name": name, "slug": slug or f"{name.lower()}-{self._count}"}
        if parent_id is not None:
            body["parent_id"] = parent_id
        response = await self.http.post("/api/v1/categories", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def product_body(self, category_id: str, **fields: Any) -> dict[str, Any]:
        self._count += 1
        body: dict[str, Any] = {
            "sku": f"SKU-{self._count}",
            "name": f"Product {self._count}",
            "description": "A fine product.",
            "price": {"amount": 1999, "currency": "USD"},
            "category_id": category_id,
            "attributes": {},
            "image_urls": [],
            "stock": 5,
        }
        body.update(fields)
        return body

    async def product(self, category_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/products", json=self.product_body(category_id, **fields), headers=self.headers
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def listing(self, **params: Any) -> httpx.Response:
        return await self.http.get("/api/v1/products", params=params)

    async def walk(self, **params: Any) -> list[dict[str, Any]]:
        """Every item of every page of a listing, following next_cursor."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.listing(**params, **({"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            items.extend(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items


@pytest.fixture
def catalog(client: httpx.AsyncClient, staff: dict[str, str]) -> Catalog:
    return Catalog(client, staff)
