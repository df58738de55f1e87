"""The DisplayPrices port on a behaving fake converter: a conversion is shown, a reason is
passed on, and a converter that hangs or breaks gives an fx_error, never a failed read."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

from catalog.domain.money import DisplayPrice, Money
from catalog.use_cases.display_price import (
    RATES_FAILED,
    RATES_TOO_SLOW,
    ConvertedPrice,
    DisplayPricesAtCurrentRates,
)

AS_OF = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
LAMP = Money(1999, "USD")


class FixedConverter:
    """Converts USD to EUR at 0.9; knows no other rate."""

    async def convert(self, price: Money, currency: str) -> ConvertedPrice | str:
        if (price.currency, currency) != ("USD", "EUR"):
            return f"The rates provider publishes no rate for {currency}."
        rate = Decimal("0.9")
        return ConvertedPrice(Money(round(price.amount * rate), "EUR"), rate, AS_OF)


class HangingConverter:
    async def convert(self, price: Money, currency: str) -> ConvertedPrice | str:
        await asyncio.sleep(30)
        raise AssertionError("never reached")


class BrokenConverter:
    async def convert(self, price: Money, currency: str) -> ConvertedPrice | str:
        raise RuntimeError("a bug in the adapter")


async def test_a_conversion_becomes_the_display_price_with_its_rate_and_as_of() -> None:
    prices = DisplayPricesAtCurrentRates(FixedConverter(), timeout_seconds=1)

    shown = await prices.display_price(LAMP, "EUR")

    assert shown == DisplayPrice(price=Money(1799, "EUR"), rate=Decimal("0.9"), as_of=AS_OF)


async def test_a_reason_becomes_the_fx_error() -> None:
    prices = DisplayPricesAtCurrentRates(FixedConverter(), timeout_seconds=1)

    shown = await prices.display_price(LAMP, "XOF")

    assert shown == DisplayPrice(
        price=None, rate=None, as_of=None, error="The rates provider publishes no rate for XOF."
    )


async def test_a_hanging_converter_is_cut_off_at_the_deadline() -> None:
    prices = DisplayPricesAtCurrentRates(HangingConverter(), timeout_seconds=0.1)
    started = time.perf_counter()

    shown = await prices.display_price(LAMP, "EUR")

    assert shown.error == RATES_TOO_SLOW
    assert shown.price is None
    assert time.perf_counter() - started < 0.5


async def test_a_broken_converter_is_an_fx_error_not_an_exception() -> None:
    prices = DisplayPricesAtCurrentRates(BrokenConverter(), timeout_seconds=1)

    shown = await prices.display_price(LAMP, "EUR")

    assert shown == DisplayPrice(price=None, rate=None, as_of=None, error=RATES_FAILED)
