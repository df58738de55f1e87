"""The catalogue's exchange rates: the kit's rates part, configured for reads or for the
refresh job, and the :class:`~catalog.use_cases.display_price.PriceConverter` over it.

Reads (the API process) convert from the rate table cached in Redis, reusing the
table they last read for ``CATALOG_FX_LOCAL_CACHE_SECONDS``; they call the provider
only when Redis holds no table at all (one fetch per process at a time, one attempt
with ``CATALOG_FX_REQUEST_TIMEOUT_SECONDS``, behind the circuit breaker). The
refresh job (the worker) fetches with ``CATALOG_FX_TIMEOUT_SECONDS`` and
``CATALOG_FX_RETRY_ATTEMPTS`` and stores the table with its as-of.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from catalog.domain.money import Money
from catalog.settings import CatalogSettings
from catalog.use_cases.display_price import ConvertedPrice
from emporium_kit.exchange_rates import (
    ConversionUnavailable,
    ExchangeRates,
    RateCache,
    RatesProvider,
    UnknownCurrency,
)

# A product read waits this long for Redis at most, and does not retry it.
READ_REDIS_TIMEOUT_SECONDS = 0.5


def rates_redis(settings: CatalogSettings, *, for_reads: bool) -> Redis:
    """The Redis client of the rate tables (reads: short timeouts, no retry)."""
    if for_reads:
        return Redis.from_url(
            settings.redis_url,
            socket_timeout=READ_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=READ_REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
    return Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def exchange_rates(settings: CatalogSettings, redis: Redis, *, for_reads: bool) -> ExchangeRates:
    """The kit's rates part as product reads (``for_reads``) or the refresh job use it."""
    provider = RatesProvider(
        settings.fx_provider_url,
        timeout_seconds=(
            settings.fx_request_timeout_seconds if for_reads else settings.fx_timeout_seconds
        ),
        retry_attempts=1 if for_reads else settings.fx_retry_attempts,
        breaker_threshold=settings.fx_breaker_threshold,
        breaker_reset_seconds=settings.fx_breaker_reset_seconds,
    )
    return ExchangeRates(
        provider,
        RateCache(redis, key_prefix=settings.fx_cache_key_prefix),
        base=settings.fx_base_currency,
        local_ttl_seconds=settings.fx_local_cache_seconds if for_reads else 0.0,
        fetch_when_empty=settings.fx_fetch_when_empty if for_reads else False,
    )


class ExchangeRatePriceConverter:
    """Converts prices through the kit's :class:`ExchangeRates`."""

    def __init__(self, rates: ExchangeRates) -> None:
        self._rates = rates

    async def convert(self, price: Money, currency: str) -> ConvertedPrice | str:
        try:
            converted = await self._rates.convert(price.amount, price.currency, currency)
        except UnknownCurrency as error:
            return f"{error.code} has no ISO 4217 minor unit: it cannot be converted."
        if isinstance(converted, ConversionUnavailable):
            return converted.detail
        return ConvertedPrice(
            price=Money(converted.amount, converted.currency),
            rate=converted.rate,
            as_of=converted.as_of,
        )
