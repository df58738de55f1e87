"""Show a product's price in another currency, at the current exchange rate.

:class:`DisplayPricesAtCurrentRates` is the :class:`~catalog.use_cases.ports.DisplayPrices`
port the product reads use. It asks a :class:`PriceConverter` (the rates adapter,
``adapters/exchange_rates.py``) and turns every way of not having a rate into a
:class:`~catalog.domain.money.DisplayPrice` whose ``error`` says why: a display
price is an extra, so a read is never failed, nor held for long, for its sake.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import structlog

from catalog.domain.money import DisplayPrice, Money

log = structlog.get_logger(__name__)

RATES_TOO_SLOW = "Exchange rates did not answer in time."
RATES_FAILED = "Exchange rates are unavailable."


@dataclass(frozen=True, slots=True)
class ConvertedPrice:
    price: Money
    rate: Decimal
    """Units of the target currency per unit of the source currency."""
    as_of: datetime
    """When the rates used were fetched from the provider."""


class PriceConverter(Protocol):
    async def convert(self, price: Money, currency: str) -> ConvertedPrice | str:
        """``price`` in ``currency``, or a sentence saying why it cannot be converted now."""


class DisplayPricesAtCurrentRates:
    """Display prices by ``converter``, each within ``timeout_seconds``."""

    def __init__(self, converter: PriceConverter, *, timeout_seconds: float) -> None:
        self._converter = converter
        self._timeout = timeout_seconds

    async def display_price(self, price: Money, currency: str) -> DisplayPrice:
        try:
            async with asyncio.timeout(self._timeout):
                converted = await self._converter.convert(price, currency)
        except TimeoutError:
            log.warning("display_price_timed_out", currency=currency, timeout=self._timeout)
            return DisplayPrice(price=None, rate=None, as_of=None, error=RATES_TOO_SLOW)
        except Exception:  # a display price is optional: never fail the read for it
            log.exception("display_price_failed", currency=currency)
            return DisplayPrice(price=None, rate=None, as_of=None, error=RATES_FAILED)
        if isinstance(converted, str):
            return DisplayPrice(price=None, rate=None, as_of=None, error=converted)
        return DisplayPrice(price=converted.price, rate=converted.rate, as_of=converted.as_of)
