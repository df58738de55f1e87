"""``GET /products/{id}?currency=``: the product read passes a validated ISO 4217 code to the
DisplayPrices port and shows what it answers (the port's conversions are tested with the
exchange-rate part)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from catalog.domain.money import DisplayPrice, Money
from catalog.main import create_app
from catalog.settings import CatalogSettings
from emporium_testkit.isolation import truncate_all

AS_OF = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


class FixedRates:
    """A DisplayPrices port at fixed rates from USD; no rate for anything else."""

    def __init__(self) -> None:
        self.asked: list[tuple[Money, str]] = []

    async def display_price(self, price: Money, currency: str) -> DisplayPrice:
        self.asked.append((price, currency))
        if price.currency == "USD" and currency == "EUR":
            rate = Decimal("0.9")
            return DisplayPrice(
                price=Money(int(price.amount * rate), "EUR"), rate=rate, as_of=AS_OF
            )
        return DisplayPrice(price=None, rate=None, as_of=None, error="no rate for " + currency)


@pytest.fixture
async def priced(
    settings: CatalogSettings, database_url: str, staff: dict[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, FixedRates, dict[str, Any]]]:
    await truncate_all(database_url)
    rates = FixedRates()
    app = create_app(settings, display_prices=rates)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as http:
            category = await http.post(
                "/api/v1/categories", json={"name": "A", "slug": "a"}, headers=staff
            )
            product = await http.post(
                "/api/v1/products",
                json={
                    "sku": "P-1",
                    "name": "Lamp",
                    "price": {"amount": 1000, "currency": "USD"},
                    "category_id": category.json()["id"],
                },
                headers=staff,
            )
            assert product.status_code == 201, product.text
            yield http, rates, product.json()


async def test_currency_adds_the_display_price_its_rate_and_date(
    priced: tuple[httpx.AsyncClient, FixedRates, dict[str, Any]],
) -> None:
    http, rates, product = priced

    response = await http.get(f"/api/v1/products/{product['id']}", params={"currency": "EUR"})

    assert response.status_code == 200
    body = response.json()
    assert body["display_price"] == {"amount": 900, "currency": "EUR"}
    assert body["fx_rate"] == "0.9"
    assert body["fx_as_of"] == "2026-12-01T16:00:00Z"
    assert body["fx_error"] is None
    assert body["price"] == {"amount": 1000, "currency": "USD"}
    assert rates.asked == [(Money(1000, "USD"), "EUR")]


async def test_without_a_rate_the_display_price_is_null_and_fx_error_says_why(
    priced: tuple[httpx.AsyncClient, FixedRates, dict[str, Any]],
) -> None:
    http, _, product = priced

    response = await http.get(f"/api/v1/products/{product['id']}", params={"currency": "JPY"})

    assert response.status_code == 200
    body = response.json()
    assert body["display_price"] is None
    assert body["fx_rate"] is None
    assert body["fx_as_of"] is None
    assert body["fx_error"] == "no rate for JPY"


async def test_without_currency_the_product_has_no_fx_fields(
    priced: tuple[httpx.AsyncClient, FixedRates, dict[str, Any]],
) -> None:
    http, rates, product = priced

    body = (await http.get(f"/api/v1/products/{product['id']}")).json()

    assert "display_price" not in body
    assert "fx_error" not in body
    assert rates.asked == []


@pytest.mark.parametrize("currency", ["eur", "EURO", "ZZZ", "", "E1R", "€"])
async def test_an_unknown_currency_is_422_and_reaches_no_port(
    priced: tuple[httpx.AsyncClient, FixedRates, dict[str, Any]], currency: str
) -> None:
    http, rates, product = priced

    response = await http.get(f"/api/v1/products/{product['id']}", params={"currency": currency})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert rates.asked == []


async def test_the_wired_rates_answer_fx_error_when_none_are_known(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """The composition root's own port: with no rate table stored, never a 500."""
    category = await client.post(
        "/api/v1/categories", json={"name": "A", "slug": "a"}, headers=staff
    )
    product = await client.post(
        "/api/v1/products",
        json={
            "sku": "P-2",
            "name": "Desk",
            "price": {"amount": 1000, "currency": "USD"},
            "category_id": category.json()["id"],
        },
        headers=staff,
    )

    response = await client.get(
        f"/api/v1/products/{product.json()['id']}", params={"currency": "EUR"}
    )

    assert response.status_code == 200
    assert response.json()["display_price"] is None
    assert response.json()["fx_error"]
