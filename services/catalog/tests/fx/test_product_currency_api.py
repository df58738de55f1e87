"""``GET /api/v1/products/{id}?currency=`` through the real rates adapter: the app reads the
rate table the refresh job keeps in Redis, the provider is the rates stand-in over HTTP.

With rates cached the price is converted (each currency's minor unit, half to even)
and the provider is not called; with the provider down the last known rates are
served with their older ``fx_as_of``; with nothing known the read still answers 200,
``display_price`` null and ``fx_error`` saying why, within a bounded time, and the
circuit breaker stops calling a failing provider.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from catalog.adapters.exchange_rates import exchange_rates
from catalog.main import create_app
from catalog.settings import CatalogSettings
from emporium_kit.exchange_rates import RateCache, RateTable
from emporium_testkit.isolation import truncate_all
from fxstandin import RatesStandIn


@dataclass
class Shop:
    http: httpx.AsyncClient
    product: dict[str, Any]

    async def read(self, currency: str) -> httpx.Response:
        return await self.http.get(
            f"/api/v1/products/{self.product['id']}", params={"currency": currency}
        )


async def _shop(settings: CatalogSettings, staff: dict[str, str]) -> AsyncIterator[Shop]:
    await truncate_all(settings.database_url)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as http:
            category = await http.post(
                "/api/v1/categories", json={"name": "Lamps", "slug": "lamps"}, headers=staff
            )
            product = await http.post(
                "/api/v1/products",
                json={
                    "sku": "LAMP-1",
                    "name": "Desk lamp",
                    "price": {"amount": 1999, "currency": "USD"},
                    "category_id": category.json()["id"],
                    "stock": 3,
                },
                headers=staff,
            )
            assert product.status_code == 201, product.text
            yield Shop(http, product.json())


@pytest.fixture
async def shop(fx_settings: CatalogSettings, staff: dict[str, str]) -> AsyncIterator[Shop]:
    async for running in _shop(fx_settings, staff):
        yield running


async def _refresh(settings: CatalogSettings, redis: Redis) -> RateTable:
    """What the worker's refresh job does."""
    rates = exchange_rates(settings, redis, for_reads=False)
    try:
        return await rates.refresh()
    finally:
        await rates.aclose()


def _as_of(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["fx_as_of"])


async def test_with_rates_cached_the_price_is_converted_without_calling_the_provider(
    shop: Shop, fx_settings: CatalogSettings, redis: Redis, standin: RatesStandIn
) -> None:
    table = await _refresh(fx_settings, redis)
    standin.behaviour.reset()

    euro, yen, dinar = [(await shop.read(code)).json() for code in ("EUR", "JPY", "KWD")]

    # 19.99 USD: * 0.9208 = 18.406792 EUR; * 151.8 = 3034.482 JPY; * 0.3075 = 6.146925 KWD
    assert euro["display_price"] == {"amount": 1841, "currency": "EUR"}
    assert euro["fx_rate"] == "0.9208"
    assert _as_of(euro) == table.fetched_at
    assert euro["fx_error"] is None
    assert euro["price"] == {"amount": 1999, "currency": "USD"}
    assert (yen["display_price"], yen["fx_rate"]) == ({"amount": 3034, "currency": "JPY"}, "151.8")
    assert dinar["display_price"] == {"amount": 6147, "currency": "KWD"}
    assert standin.behaviour.requests == 0


async def test_with_the_provider_down_the_last_known_rates_are_served_with_their_as_of(
    shop: Shop, fx_settings: CatalogSettings, redis: Redis, standin: RatesStandIn
) -> None:
    three_days_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    stale = RateTable(
        base="USD",
        rates={"EUR": Decimal("0.95"), "GBP": Decimal("0.8")},
        rates_date=date(2026, 11, 27),
        fetched_at=three_days_ago,
    )
    await RateCache(redis, key_prefix=fx_settings.fx_cache_key_prefix).store(stale)
    standin.behaviour.fail_status = 503
    await _refresh_fails(fx_settings, redis)

    body = (await shop.read("EUR")).json()

    assert body["display_price"] == {"amount": 1899, "currency": "EUR"}  # 18.9905, half-even
    assert body["fx_rate"] == "0.95"
    assert _as_of(body) == three_days_ago
    assert body["fx_error"] is None
    assert standin.behaviour.requests == 1  # the job's failed refresh; the read asked nobody


async def _refresh_fails(settings: CatalogSettings, redis: Redis) -> None:
    from emporium_kit.exchange_rates import ProviderUnavailable

    with pytest.raises(ProviderUnavailable):
        await _refresh(settings, redis)


async def test_with_nothing_known_the_display_price_is_null_and_fx_error_says_why(
    shop: Shop, standin: RatesStandIn
) -> None:
    standin.behaviour.fail_status = 503

    response = await shop.read("EUR")

    assert response.status_code == 200
    body = response.json()
    assert body["display_price"] is None
    assert body["fx_rate"] is None
    assert body["fx_as_of"] is None
    assert body["fx_error"].startswith("No exchange rates are known yet and the rates provider")
    assert body["price"] == {"amount": 1999, "currency": "USD"}
    assert standin.behaviour.requests == 1


async def test_with_nothing_known_a_failing_provider_is_called_until_its_circuit_opens(
    shop: Shop, fx_settings: CatalogSettings, standin: RatesStandIn
) -> None:
    standin.behaviour.fail_status = 500

    bodies = [(await shop.read("GBP")).json() for _ in range(fx_settings.fx_breaker_threshold + 4)]

    assert standin.behaviour.requests == fx_settings.fx_breaker_threshold
    assert all(body["display_price"] is None for body in bodies)
    assert "calls paused" in bodies[-1]["fx_error"]


async def test_a_hanging_provider_holds_a_read_no_longer_than_its_deadline(
    shop: Shop, fx_settings: CatalogSettings, standin: RatesStandIn
) -> None:
    standin.behaviour.delay_seconds = 30
    started = time.perf_counter()

    response = await shop.read("EUR")

    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["display_price"] is None
    assert "did not answer" in response.json()["fx_error"]
    assert elapsed < fx_settings.fx_request_timeout_seconds + 0.5


async def test_with_nothing_cached_the_first_read_fetches_once_and_caches(
    shop: Shop, redis: Redis, standin: RatesStandIn, rates_key: str
) -> None:
    bodies = [(await shop.read("EUR")).json() for _ in range(3)]

    assert [body["display_price"] for body in bodies] == [{"amount": 1841, "currency": "EUR"}] * 3
    assert standin.behaviour.requests == 1
    assert await redis.exists(rates_key) == 1


async def test_a_currency_the_provider_does_not_publish_says_so(
    shop: Shop, fx_settings: CatalogSettings, redis: Redis
) -> None:
    await _refresh(fx_settings, redis)

    body = (await shop.read("XOF")).json()

    assert body["display_price"] is None
    assert body["fx_error"] == "The rates provider publishes no rate for XOF."


@pytest.mark.parametrize("currency", ["XAU", "XTS", "ABC", "usd"])
async def test_a_code_without_an_iso_4217_minor_unit_is_a_422_problem(
    shop: Shop, currency: str, standin: RatesStandIn
) -> None:
    response = await shop.read(currency)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 422
    assert standin.behaviour.requests == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_redis_is_an_fx_error_not_a_failure(
    fx_settings: CatalogSettings, staff: dict[str, str]
) -> None:
    settings = fx_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    async for shop in _shop(settings, staff):
        started = time.perf_counter()
        response = await shop.read("EUR")
        assert response.status_code == 200
        assert response.json()["display_price"] is None
        assert response.json()["fx_error"] == (
            "Exchange rates are unavailable: their cache cannot be reached."
        )
        assert time.perf_counter() - started < 1.5
