"""The exchange-rates part against the real rates stand-in over HTTP and real Redis.

Each test has its own Redis key prefix on this worker's Redis database, and its own
stand-in on a free port, so nothing is shared between tests or workers.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from emporium_kit.currencies import (
    KNOWN_CURRENCIES,
    UnknownCurrency,
    is_known_currency,
    minor_unit_exponent,
)
from emporium_kit.exchange_rates import (
    CircuitOpen,
    Conversion,
    ConversionUnavailable,
    ExchangeRates,
    ProviderRefused,
    ProviderUnavailable,
    RateCache,
    RatesProvider,
    RateTable,
    convert_with,
)
from emporium_testkit.isolation import redis_url
from fxstandin import RatesStandIn, StandInSettings

RATES_DATE = date(2026, 11, 30)
KIT_REDIS_OFFSET = 3


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[RatesStandIn]:
    async with RatesStandIn(StandInSettings(port=0, rates_date=RATES_DATE)) as running:
        yield running


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url(KIT_REDIS_OFFSET), socket_timeout=2)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def cache(redis: Redis) -> AsyncIterator[RateCache]:
    prefix = f"test-fx-{uuid.uuid4().hex}:"
    yield RateCache(redis, key_prefix=prefix)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


def _provider(url: str, **overrides: float) -> RatesProvider:
    options: dict[str, float] = {
        "timeout_seconds": 2.0,
        "retry_attempts": 1,
        "retry_backoff_seconds": 0.01,
        "breaker_threshold": 5,
        "breaker_reset_seconds": 30.0,
        **overrides,
    }
    return RatesProvider(
        url,
        timeout_seconds=options["timeout_seconds"],
        retry_attempts=int(options["retry_attempts"]),
        retry_backoff_seconds=options["retry_backoff_seconds"],
        breaker_threshold=int(options["breaker_threshold"]),
        breaker_reset_seconds=options["breaker_reset_seconds"],
    )


@pytest_asyncio.fixture
async def rates(standin: RatesStandIn, cache: RateCache) -> AsyncIterator[ExchangeRates]:
    exchange = ExchangeRates(_provider(standin.url), cache, base="USD")
    yield exchange
    await exchange.aclose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- currencies ---------------------------------------------------------------------


def test_iso_4217_codes_with_a_minor_unit_are_known_and_others_are_not() -> None:
    assert {"USD", "EUR", "JPY", "KWD", "CLF"} <= KNOWN_CURRENCIES
    assert [minor_unit_exponent(code) for code in ("JPY", "USD", "KWD", "CLF")] == [0, 2, 3, 4]
    for code in ("XAU", "XTS", "XXX", "ABC", "usd", "US", ""):
        assert not is_known_currency(code), code
    with pytest.raises(UnknownCurrency):
        minor_unit_exponent("XAU")


# --- conversions by a table -----------------------------------------------------------

TABLE = RateTable(
    base="USD",
    rates={"EUR": Decimal("0.5"), "JPY": Decimal("150"), "KWD": Decimal("0.3075")},
    rates_date=RATES_DATE,
    fetched_at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
)


def test_conversion_rounds_half_to_even_in_integer_minor_units() -> None:
    halves = [convert_with(TABLE, cents, "USD", "EUR") for cents in (1, 3, 5, 7)]
    # 0.5, 1.5, 2.5, 3.5 euro cents: banker's rounding.
    assert [c.amount for c in halves if c] == [0, 2, 2, 4]


def test_conversion_uses_each_currencys_exponent() -> None:
    to_yen = convert_with(TABLE, 1999, "USD", "JPY")  # 19.99 USD * 150 = 2998.5 JPY
    to_dinar = convert_with(TABLE, 1999, "USD", "KWD")  # 19.99 * 0.3075 = 6.146925 KWD
    from_yen = convert_with(TABLE, 1000, "JPY", "USD")  # 1000 / 150 = 6.666... USD
    cross = convert_with(TABLE, 1000, "EUR", "JPY")  # 10.00 EUR * 300 = 3000 JPY

    assert to_yen == Conversion(2998, "JPY", Decimal(150), TABLE.fetched_at)
    assert to_dinar is not None
    assert to_dinar.amount == 6147
    assert from_yen is not None
    assert from_yen.amount == 667
    assert from_yen.rate == Decimal("0.006666666667")  # ten significant digits
    assert cross is not None
    assert (cross.amount, cross.rate) == (3000, Decimal(300))
    assert convert_with(TABLE, 100, "USD", "GBP") is None


def test_a_table_survives_its_json_form() -> None:
    assert RateTable.from_json(TABLE.to_json()) == TABLE


# --- refresh, the cache and outages -----------------------------------------------------


async def test_refresh_fetches_over_http_and_caches_the_table_with_its_as_of(
    rates: ExchangeRates, cache: RateCache, redis: Redis
) -> None:
    before = datetime.now(UTC)
    table = await rates.refresh()

    assert table.base == "USD"
    assert table.rates_date == RATES_DATE
    assert table.rates["EUR"] == Decimal("0.9208")
    assert table.rates["JPY"] == Decimal("151.8")
    assert before <= table.fetched_at <= datetime.now(UTC)
    assert await redis.exists(cache.key("USD")) == 1
    assert await redis.ttl(cache.key("USD")) == -1  # kept until replaced
    assert await cache.load("USD") == table

    price = await rates.convert(1999, "USD", "EUR")  # 19.99 * 0.9208 = 18.406792
    assert price == Conversion(1841, "EUR", Decimal("0.9208"), table.fetched_at)
    yen = await rates.convert(1999, "USD", "JPY")  # 19.99 * 151.8 = 3034.482
    assert isinstance(yen, Conversion)
    assert yen.amount == 3034


async def test_with_the_provider_down_the_last_known_rates_are_served_with_their_as_of(
    rates: ExchangeRates, standin: RatesStandIn
) -> None:
    known = await rates.refresh()
    standin.behaviour.fail_status = 503

    with pytest.raises(ProviderUnavailable):
        await rates.refresh()
    await standin.stop()
    with pytest.raises(ProviderUnavailable):
        await rates.refresh()

    price = await rates.convert(10_000, "USD", "EUR")
    assert price == Conversion(9208, "EUR", Decimal("0.9208"), known.fetched_at)


async def test_with_nothing_known_and_the_provider_down_the_answer_says_why(
    standin: RatesStandIn, cache: RateCache
) -> None:
    standin.behaviour.fail_status = 500
    exchange = ExchangeRates(_provider(standin.url), cache, base="USD")
    no_fetch = ExchangeRates(_provider(standin.url), cache, base="USD", fetch_when_empty=False)
    try:
        answer = await exchange.convert(1999, "USD", "EUR")
        not_fetched = await no_fetch.convert(1999, "USD", "EUR")
    finally:
        await exchange.aclose()
        await no_fetch.aclose()

    assert isinstance(answer, ConversionUnavailable)
    assert answer.reason == "no_rates_known"
    assert "provider is unavailable" in answer.detail
    assert "500" in answer.detail
    assert not_fetched == ConversionUnavailable(
        "no_rates_known", "No exchange rates are known yet: they have not been fetched."
    )
    assert standin.behaviour.requests == 1  # the second never called the provider


async def test_nothing_cached_fetches_once_for_concurrent_reads(
    rates: ExchangeRates, standin: RatesStandIn
) -> None:
    standin.behaviour.delay_seconds = 0.2

    answers = await asyncio.gather(*(rates.convert(500, "USD", "GBP") for _ in range(20)))

    assert {answer for answer in answers if isinstance(answer, Conversion)} == {
        Conversion(394, "GBP", Decimal("0.7875"), answers[0].as_of)  # type: ignore[union-attr]
    }
    assert standin.behaviour.requests == 1


async def test_a_currency_the_provider_does_not_publish_is_unavailable_not_an_error(
    rates: ExchangeRates,
) -> None:
    await rates.refresh()

    answer = await rates.convert(1999, "USD", "XOF")
    same = await rates.convert(1999, "USD", "USD")

    assert answer == ConversionUnavailable(
        "no_rate_for_currency", "The rates provider publishes no rate for XOF."
    )
    assert isinstance(same, Conversion)
    assert (same.amount, same.rate) == (1999, Decimal(1))
    with pytest.raises(UnknownCurrency):
        await rates.convert(1999, "USD", "ABC")


async def test_an_unreachable_cache_with_no_table_read_yet_is_unavailable(
    standin: RatesStandIn, cache: RateCache
) -> None:
    refresher = ExchangeRates(_provider(standin.url), cache, base="USD")
    await refresher.refresh()
    await refresher.aclose()
    dead_redis = Redis(
        host="127.0.0.1",
        port=_closed_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    reader = ExchangeRates(
        _provider(standin.url), RateCache(dead_redis, key_prefix="none:"), base="USD"
    )
    try:
        answer = await reader.convert(1999, "USD", "EUR")
    finally:
        await reader.aclose()
        await dead_redis.aclose()

    assert answer == ConversionUnavailable(
        "rates_cache_unreachable",
        "Exchange rates are unavailable: their cache cannot be reached.",
    )


# --- the provider: timeouts, retries, the circuit breaker ---------------------------------


async def test_the_breaker_opens_after_n_failures_and_stops_calling(
    standin: RatesStandIn,
) -> None:
    standin.behaviour.fail_status = 503
    provider = _provider(standin.url, breaker_threshold=3, retry_attempts=2)
    try:
        for _ in range(3):
            with pytest.raises(ProviderUnavailable) as failed:
                await provider.latest("USD")
            assert not isinstance(failed.value, CircuitOpen)
        assert standin.behaviour.requests == 6  # 3 calls, 2 attempts each (a GET: retried)

        standin.behaviour.fail_status = None  # recovered, but the circuit is open
        started = time.perf_counter()
        for _ in range(5):
            with pytest.raises(CircuitOpen) as opened:
                await provider.latest("USD")
        assert time.perf_counter() - started < 0.1
        assert 29 <= opened.value.retry_after <= 30
        assert standin.behaviour.requests == 6
    finally:
        await provider.aclose()


async def test_the_breaker_lets_a_trial_call_through_after_its_reset_time(
    standin: RatesStandIn,
) -> None:
    standin.behaviour.fail_status = 503
    provider = _provider(standin.url, breaker_threshold=1, breaker_reset_seconds=0.3)
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.latest("USD")
        with pytest.raises(CircuitOpen):
            await provider.latest("USD")
        standin.behaviour.fail_status = None
        await asyncio.sleep(0.4)
        table = await provider.latest("USD")
    finally:
        await provider.aclose()

    assert table.rates["EUR"] == Decimal("0.9208")
    assert standin.behaviour.requests == 2


async def test_a_refusal_is_not_retried_and_does_not_open_the_circuit(
    standin: RatesStandIn,
) -> None:
    provider = _provider(standin.url, breaker_threshold=2, retry_attempts=3)
    try:
        for _ in range(4):
            with pytest.raises(ProviderRefused):
                await provider.latest("CLF")  # ISO 4217, but the stand-in has no rates for it
        table = await provider.latest("USD")
    finally:
        await provider.aclose()

    assert standin.behaviour.requests == 5
    assert table.base == "USD"


async def test_a_slow_provider_times_out_within_the_deadline(standin: RatesStandIn) -> None:
    standin.behaviour.delay_seconds = 5
    provider = _provider(standin.url, timeout_seconds=0.2)
    started = time.perf_counter()
    try:
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            await provider.latest("USD")
    finally:
        await provider.aclose()

    assert time.perf_counter() - started < 1.0


async def test_an_unreachable_provider_is_unavailable() -> None:
    provider = _provider(f"http://127.0.0.1:{_closed_port()}", retry_attempts=2)
    try:
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            await provider.latest("USD")
    finally:
        await provider.aclose()
