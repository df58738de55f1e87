"""The exchange-rates part: a rates provider behind a circuit breaker, a Redis cache of its
last table, and conversions of integer minor units between ISO 4217 currencies.

Three pieces, each small enough to replace:

* :class:`RatesProvider` fetches ``GET {url}/latest?base=XXX`` (Frankfurter's
  API, which the development stand-in ``fxstandin`` speaks too) with httpx:
  a deadline on every attempt, retries through tenacity (the request is a GET:
  idempotent, so every transient failure may be retried), all of it inside a
  purgatory circuit breaker. Once ``breaker_threshold`` calls in a row failed,
  the circuit opens and calls fail at once with :class:`CircuitOpen`, without
  touching the network, for ``breaker_reset_seconds``; then one trial call
  decides. A 4xx (an unknown base) is :class:`ProviderRefused`: permanent, and
  not the provider's failure, so it does not count towards opening.
* :class:`RateCache` keeps the last table per base in Redis, with the
  provider's date and the moment it was fetched (its *as of*), without expiry:
  with the provider down, the last known rates are still there.
* :class:`ExchangeRates` answers :meth:`~ExchangeRates.convert` from the cache
  (and, for ``local_ttl_seconds``, from the table it last read, sparing a Redis
  round trip per read). It calls the provider only when nothing is cached, once
  at a time per process, and only if ``fetch_when_empty``. It never raises for
  an outage: the answer is a :class:`Conversion` or a
  :class:`ConversionUnavailable` that says why. A scheduled job calls
  :meth:`~ExchangeRates.refresh` to keep the cache current.

Conversion, with ``rate`` the provider's rate from the source currency to the
target (crossed through the table's base when neither is the base)::

    rate   = round(rates[target] / rates[source], 10 significant digits)
    amount = round_half_even(amount_minor / 10**exp(source) * rate * 10**exp(target))

so a price in integer minor units gives a price in integer minor units, with
each currency's own exponent (JPY 0, USD 2, KWD 3: :mod:`emporium_kit.currencies`),
rounded half to even (banker's rounding: no upward bias over many prices), and
``amount`` is exactly what the returned ``rate`` gives.

Needs ``emporium-kit[exchange-rates]`` (httpx, redis, purgatory, iso4217).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final, Literal

import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.model import OpenedState
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as full_jitter

from emporium_kit.currencies import UnknownCurrency, is_known_currency, minor_unit_exponent
from emporium_kit.retrying import PermanentError

__all__ = [
    "RATE_SIGNIFICANT_DIGITS",
    "CircuitOpen",
    "Conversion",
    "ConversionUnavailable",
    "ExchangeRates",
    "ProviderRefused",
    "ProviderUnavailable",
    "RateCache",
    "RateTable",
    "RatesProvider",
    "UnavailableReason",
    "UnknownCurrency",
]

log = structlog.get_logger(__name__)

RATE_SIGNIFICANT_DIGITS: Final = 10
_RATE_CONTEXT: Final = Context(prec=RATE_SIGNIFICANT_DIGITS, rounding=ROUND_HALF_EVEN)
_WIDE: Final = Context(prec=50)


# --- values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateTable:
    """One answer of the provider: units of each currency per one unit of ``base``."""

    base: str
    rates: Mapping[str, Decimal]
    rates_date: date
    """The provider's date of these rates (a business day)."""
    fetched_at: datetime
    """When they were fetched (UTC): what a conversion reports as its *as of*."""

    def rate(self, source: str, target: str) -> Decimal | None:
        """The rate from ``source`` to ``target``, crossed through the base; None when the
        table lacks either currency."""
        per_base = {**self.rates, self.base: Decimal(1)}
        if source not in per_base or target not in per_base:
            return None
        return _RATE_CONTEXT.divide(per_base[target], per_base[source])

    def to_json(self) -> str:
        return json.dumps(
            {
                "base": self.base,
                "date": self.rates_date.isoformat(),
                "fetched_at": self.fetched_at.isoformat(),
                "rates": {code: str(rate) for code, rate in sorted(self.rates.items())},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RateTable:
        data = json.loads(text)
        return cls(
            base=data["base"],
            rates={code: Decimal(rate) for code, rate in data["rates"].items()},
            rates_date=date.fromisoformat(data["date"]),
            fetched_at=datetime.fromisoformat(data["fetched_at"]),
        )


@dataclass(frozen=True, slots=True)
class Conversion:
    """An amount converted: ``amount`` minor units of ``currency``, at ``rate``, with the
    rates as they were at ``as_of``."""

    amount: int
    currency: str
    rate: Decimal
    as_of: datetime


UnavailableReason = Literal[
    "no_rates_known",
    "no_rate_for_currency",
    "rates_cache_unreachable",
    "rates_provider_unavailable",
]


@dataclass(frozen=True, slots=True)
class ConversionUnavailable:
    """No conversion can be given: ``reason`` is a stable code, ``detail`` says it for people."""

    reason: UnavailableReason
    detail: str


# --- errors -------------------------------------------------------------------------


class ProviderUnavailable(Exception):
    """The provider did not give a usable answer (unreachable, timed out, 5xx, malformed)."""


class CircuitOpen(ProviderUnavailable):
    """Calls are paused after repeated failures; ``retry_after`` seconds until a trial call."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the rates provider is failing; calls paused for {retry_after:.0f} s")
        self.retry_after = retry_after


class ProviderRefused(PermanentError):
    """The provider refused the request itself (4xx: an unknown base, say)."""


# --- the provider -------------------------------------------------------------------


def _breaker_event_logger(name: str, event_name: str, event: Event) -> None:
    if event_name == "state_changed":
        log.warning("fx_circuit_state_changed", circuit=name, state=getattr(event, "state", None))


class RatesProvider:
    """A Frankfurter-shaped rates API over httpx, behind retries and a circuit breaker.

    ``timeout_seconds`` bounds each attempt as a whole (connect, send, the full
    answer); ``retry_attempts`` is the number of attempts in all (1: no retry),
    separated by a full-jitter exponential wait from ``retry_backoff_seconds``.
    """

    CIRCUIT: Final = "exchange-rates"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 2.0,
        retry_attempts: int = 2,
        retry_backoff_seconds: float = 0.2,
        breaker_threshold: int = 5,
        breaker_reset_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if retry_attempts < 1:
            raise ValueError("retry_attempts counts the first attempt: at least 1")
        self._timeout = timeout_seconds
        self._attempts = retry_attempts
        self._backoff = retry_backoff_seconds
        self._reset_seconds = breaker_reset_seconds
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            headers={"Accept": "application/json"},
            trust_env=False,
            follow_redirects=False,
            transport=transport,
        )
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold,
            default_ttl=breaker_reset_seconds,
            # Only the provider's own failure counts; a refusal or a cancellation does not.
            exclude=[(BaseException, lambda exc: not isinstance(exc, ProviderUnavailable))],
        )
        self._breakers.add_listener(_breaker_event_logger)

    async def latest(self, base: str) -> RateTable:
        """The provider's latest rates for ``base``. Raises :class:`ProviderUnavailable`
        (:class:`CircuitOpen` while paused) or :class:`ProviderRefused`."""
        breaker = await self._breakers.get_breaker(self.CIRCUIT)
        try:
            async with breaker:
                return await self._latest_with_retries(base)
        except OpenedState as opened:
            retry_after = max(0.0, opened.opened_at + self._reset_seconds - time.time())
            raise CircuitOpen(retry_after) from None

    async def _latest_with_retries(self, base: str) -> RateTable:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=full_jitter(multiplier=self._backoff, max=self._backoff * 8),
            retry=retry_if_exception_type(ProviderUnavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._latest_once(base)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _latest_once(self, base: str) -> RateTable:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.get("/latest", params={"base": base})
        except (httpx.HTTPError, TimeoutError, OSError) as error:
            raise ProviderUnavailable(f"the rates provider did not answer: {error!r}") from error
        if response.status_code >= 500:
            raise ProviderUnavailable(f"the rates provider answered {response.status_code}")
        if response.status_code >= 400:
            raise ProviderRefused(
                f"the rates provider refused base {base}: {response.status_code} {response.text}"
            )
        if response.status_code != 200:
            raise ProviderUnavailable(f"the rates provider answered {response.status_code}")
        return _parse_latest(response.content, base=base, fetched_at=datetime.now(UTC))

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse_latest(body: bytes, *, base: str, fetched_at: datetime) -> RateTable:
    try:
        data = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        answered_base = data["base"]
        rates = {
            str(code): Decimal(rate)
            for code, rate in data["rates"].items()
            if is_known_currency(str(code))
        }
        rates_date = date.fromisoformat(data["date"])
    except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise ProviderUnavailable(f"the rates provider's answer is malformed: {error!r}") from error
    if answered_base != base:
        raise ProviderUnavailable(f"asked for base {base}, the provider answered {answered_base}")
    if any(not rate.is_finite() or rate <= 0 for rate in rates.values()):
        raise ProviderUnavailable("the rates provider's answer holds a rate that is not positive")
    return RateTable(base=base, rates=rates, rates_date=rates_date, fetched_at=fetched_at)


# --- the cache ----------------------------------------------------------------------


class CacheUnreachable(Exception):
    """Redis did not answer."""


class RateCache:
    """The last rate table per base, in Redis under ``{key_prefix}rates:{base}``, kept
    until replaced (no expiry: stale rates are better than none, and say their age)."""

    def __init__(self, redis: Redis, *, key_prefix: str = "fx:") -> None:
        self._redis = redis
        self._prefix = key_prefix

    def key(self, base: str) -> str:
        return f"{self._prefix}rates:{base}"

    async def load(self, base: str) -> RateTable | None:
        try:
            raw = await self._redis.get(self.key(base))
        except (RedisError, OSError) as error:
            raise CacheUnreachable(repr(error)) from error
        if raw is None:
            return None
        try:
            return RateTable.from_json(raw)
        except (ValueError, KeyError, TypeError, InvalidOperation):
            log.warning("fx_cached_table_unreadable", key=self.key(base))
            return None

    async def store(self, table: RateTable) -> None:
        try:
            await self._redis.set(self.key(table.base), table.to_json())
        except (RedisError, OSError) as error:
            raise CacheUnreachable(repr(error)) from error


# --- conversions --------------------------------------------------------------------


def convert_with(table: RateTable, amount: int, source: str, target: str) -> Conversion | None:
    """``amount`` minor units of ``source`` in ``target`` by ``table``; None when the table
    has no rate for either currency. Raises :class:`UnknownCurrency` for a code that is
    not ISO 4217."""
    source_exponent = minor_unit_exponent(source)
    target_exponent = minor_unit_exponent(target)
    rate = table.rate(source, target)
    if rate is None:
        return None
    value = _WIDE.multiply(Decimal(amount).scaleb(target_exponent - source_exponent), rate)
    converted = int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_WIDE))
    return Conversion(amount=converted, currency=target, rate=rate, as_of=table.fetched_at)


class ExchangeRates:
    """Conversions from the cached table of ``base``; :meth:`refresh` renews it."""

    def __init__(
        self,
        provider: RatesProvider,
        cache: RateCache,
        *,
        base: str,
        local_ttl_seconds: float = 0.0,
        fetch_when_empty: bool = True,
    ) -> None:
        if not is_known_currency(base):
            raise UnknownCurrency(base)
        self._provider = provider
        self._cache = cache
        self._base = base
        self._local_ttl = local_ttl_seconds
        self._fetch_when_empty = fetch_when_empty
        self._last: RateTable | None = None
        self._last_read_at = float("-inf")
        self._first_fetch: asyncio.Task[RateTable | ConversionUnavailable] | None = None

    @property
    def base(self) -> str:
        return self._base

    async def refresh(self) -> RateTable:
        """Fetch the provider's table and cache it. Raises :class:`ProviderUnavailable`,
        :class:`ProviderRefused` or :class:`CacheUnreachable` (a job retries them)."""
        table = await self._provider.latest(self._base)
        await self._cache.store(table)
        self._remember(table)
        log.info(
            "fx_rates_refreshed",
            base=table.base,
            currencies=len(table.rates),
            rates_date=table.rates_date.isoformat(),
        )
        return table

    async def current(self) -> RateTable | ConversionUnavailable:
        """The table conversions use now, or why there is none."""
        if self._last is not None and time.monotonic() - self._last_read_at < self._local_ttl:
            return self._last
        try:
            table = await self._cache.load(self._base)
        except CacheUnreachable as error:
            log.warning("fx_cache_unreachable", error=str(error))
            if self._last is not None:  # the last table this process saw beats none
                return self._last
            return ConversionUnavailable(
                "rates_cache_unreachable",
                "Exchange rates are unavailable: their cache cannot be reached.",
            )
        if table is not None:
            self._remember(table)
            return table
        return await self._fetch_first()

    async def _fetch_first(self) -> RateTable | ConversionUnavailable:
        if not self._fetch_when_empty:
            return ConversionUnavailable(
                "no_rates_known", "No exchange rates are known yet: they have not been fetched."
            )
        # One fetch at a time per process: concurrent reads share it (and its failure).
        if self._first_fetch is None:
            fetch = asyncio.create_task(self._try_refresh())
            self._first_fetch = fetch
            fetch.add_done_callback(self._forget_first_fetch)
        return await asyncio.shield(self._first_fetch)

    def _forget_first_fetch(self, _: object) -> None:
        self._first_fetch = None

    async def _try_refresh(self) -> RateTable | ConversionUnavailable:
        try:
            return await self.refresh()
        except (ProviderUnavailable, ProviderRefused) as error:
            log.warning("fx_first_fetch_failed", error=str(error))
            return ConversionUnavailable(
                "no_rates_known",
                f"No exchange rates are known yet and the rates provider is unavailable ({error}).",
            )
        except CacheUnreachable:
            return self._last or ConversionUnavailable(
                "rates_cache_unreachable",
                "Exchange rates are unavailable: their cache cannot be reached.",
            )

    async def convert(
        self, amount: int, source: str, target: str
    ) -> Conversion | ConversionUnavailable:
        """``amount`` minor units of ``source`` in ``target``. Raises :class:`UnknownCurrency`
        for a code that is not ISO 4217 (check with ``is_known_currency`` first); every
        outage is a :class:`ConversionUnavailable`."""
        for code in (source, target):
            minor_unit_exponent(code)  # raises UnknownCurrency
        if source == target:
            return Conversion(
                amount=amount, currency=target, rate=Decimal(1), as_of=datetime.now(UTC)
            )
        table = await self.current()
        if isinstance(table, ConversionUnavailable):
            return table
        conversion = convert_with(table, amount, source, target)
        if conversion is None:
            missing = target if table.rate(self._base, target) is None else source
            return ConversionUnavailable(
                "no_rate_for_currency", f"The rates provider publishes no rate for {missing}."
            )
        return conversion

    def _remember(self, table: RateTable) -> None:
        self._last = table
        self._last_read_at = time.monotonic()

    async def aclose(self) -> None:
        await self._provider.aclose()
