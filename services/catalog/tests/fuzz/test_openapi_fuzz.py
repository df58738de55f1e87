"""Schemathesis against the running catalogue service: no input yields a server error, and
no request that the OpenAPI document allows is refused as malformed.

The service runs as a real process (uvicorn, as in production) on this worker's
database, verifying tokens against the JWKS stand-in; generated requests carry a
catalog:write token so the write routes are explored past authorisation, and a
second run goes without one. A category and a product are stored first, so reads
and listings meet real rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from catalog_testkit import JwksStandIn, SigningKey
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from catalog.settings import CatalogSettings
from emporium_kit.pagination import InvalidCursor
from emporium_kit.problems import problem_type
from emporium_testkit.fuzzing import accepts_positive_data
from emporium_testkit.isolation import truncate_all
from emporium_testkit.processes import ChildProcess, free_port

# What the document cannot promise: a generated id that names no category (the body's
# reference is an invalid field, 422), and a generated price range upside down.
UNMET_REFERENCES = {
    problem_type("parent-category-not-found"),
    problem_type("product-category-not-found"),
    problem_type("invalid-price-range"),
}
positive_data_accepted = accepts_positive_data(
    unissued_value_problems={problem_type(InvalidCursor.code)},
    unmet_reference_problems=UNMET_REFERENCES,
)


async def _store_some(base: str, database_url: str, headers: dict[str, str]) -> None:
    await truncate_all(database_url)
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        category = await http.post("/api/v1/categories", json={"name": "Audio", "slug": "audio"})
        assert category.status_code == 201, category.text
        product = await http.post(
            "/api/v1/products",
            json={
                "sku": "FUZZ-1",
                "name": "Wireless headphones",
                "price": {"amount": 1999, "currency": "USD"},
                "category_id": category.json()["id"],
                "attributes": {"colour": "black"},
                "stock": 3,
            },
        )
        assert product.status_code == 201, product.text


@pytest.fixture(scope="module")
def catalog_process(settings: CatalogSettings, jwks: JwksStandIn) -> Iterator[str]:
    port = free_port()
    env = {
        "CATALOG_PORT": str(port),
        "CATALOG_DATABASE_URL": settings.database_url,
        "CATALOG_USERS_URL": jwks.url,
        "CATALOG_JWKS_MIN_REFRESH_SECONDS": "0",
        "CATALOG_RUN_OUTBOX_RELAY": "false",
        "CATALOG_FX_FETCH_WHEN_EMPTY": "false",
        "REDIS_URL": settings.redis_url,
        "LOG_LEVEL": "WARNING",
    }
    process = ChildProcess("catalog", env=env)
    base = f"http://127.0.0.1:{port}"
    process.wait_until_ready(f"{base}/health/live")
    yield base
    process.stop()


@pytest.fixture(scope="module")
def staff_headers(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.staff_headers()


@pytest.fixture(scope="module")
def catalog_schema(
    catalog_process: str, settings: CatalogSettings, staff_headers: dict[str, str]
) -> Any:
    asyncio.run(_store_some(catalog_process, settings.database_url, staff_headers))
    return schemathesis.openapi.from_url(f"{catalog_process}/openapi.json")


schema = schemathesis.pytest.from_fixture("catalog_schema")

CHECKS = [not_a_server_error, positive_data_accepted]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_as_staff(
    case: Any, staff_headers: dict[str, str]
) -> None:
    case.call_and_validate(headers=staff_headers, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_anonymously(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
