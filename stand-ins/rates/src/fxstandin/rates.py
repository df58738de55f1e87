"""The stand-in's rates: one fixed table, so every answer is the same for the same request.

Rates are quoted against the US dollar (units of the currency per 1 USD, close
to real mid-market values); a table for another base is derived by cross rate
and rounded to six significant digits, as a provider publishing a few
digits would. The table covers the major ISO 4217 currencies and, for minor
units, the zero-decimal (JPY, KRW, CLP...) and three-decimal ones (KWD, BHD,
JOD, OMR, TND).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

CURRENCY_NAMES: Final[Mapping[str, str]] = {
    "AED": "UAE Dirham",
    "AUD": "Australian Dollar",
    "BGN": "Bulgarian Lev",
    "BHD": "Bahraini Dinar",
    "BRL": "Brazilian Real",
    "CAD": "Canadian Dollar",
    "CHF": "Swiss Franc",
    "CLP": "Chilean Peso",
    "CNY": "Chinese Renminbi Yuan",
    "CZK": "Czech Koruna",
    "DKK": "Danish Krone",
    "EUR": "Euro",
    "GBP": "British Pound",
    "HKD": "Hong Kong Dollar",
    "HUF": "Hungarian Forint",
    "IDR": "Indonesian Rupiah",
    "ILS": "Israeli New Sheqel",
    "INR": "Indian Rupee",
    "ISK": "Icelandic Króna",
    "JOD": "Jordanian Dinar",
    "JPY": "Japanese Yen",
    "KRW": "South Korean Won",
    "KWD": "Kuwaiti Dinar",
    "MXN": "Mexican Peso",
    "MYR": "Malaysian Ringgit",
    "NOK": "Norwegian Krone",
    "NZD": "New Zealand Dollar",
    "OMR": "Omani Rial",
    "PHP": "Philippine Peso",
    "PLN": "Polish Złoty",
    "RON": "Romanian Leu",
    "SAR": "Saudi Riyal",
    "SEK": "Swedish Krona",
    "SGD": "Singapore Dollar",
    "THB": "Thai Baht",
    "TND": "Tunisian Dinar",
    "TRY": "Turkish Lira",
    "USD": "United States Dollar",
    "ZAR": "South African Rand",
}

PER_US_DOLLAR: Final[Mapping[str, Decimal]] = {
    code: Decimal(value)
    for code, value in {
        "AED": "3.6725",
        "AUD": "1.5230",
        "BGN": "1.8010",
        "BHD": "0.376",
        "BRL": "5.4350",
        "CAD": "1.3720",
        "CHF": "0.8830",
        "CLP": "935",
        "CNY": "7.2450",
        "CZK": "23.150",
        "DKK": "6.8700",
        "EUR": "0.9208",
        "GBP": "0.7875",
        "HKD": "7.8050",
        "HUF": "362.40",
        "IDR": "15870",
        "ILS": "3.7120",
        "INR": "83.450",
        "ISK": "138.20",
        "JOD": "0.709",
        "JPY": "151.80",
        "KRW": "1365",
        "KWD": "0.3075",
        "MXN": "17.080",
        "MYR": "4.7150",
        "NOK": "10.650",
        "NZD": "1.6580",
        "OMR": "0.385",
        "PHP": "56.150",
        "PLN": "3.9850",
        "RON": "4.5810",
        "SAR": "3.7500",
        "SEK": "10.420",
        "SGD": "1.3480",
        "THB": "35.850",
        "TND": "3.1250",
        "TRY": "32.150",
        "USD": "1",
        "ZAR": "18.620",
    }.items()
}

SIGNIFICANT_DIGITS: Final = 6


class UnknownCurrency(LookupError):
    """A code the stand-in has no rate for."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _significant(value: Decimal, digits: int = SIGNIFICANT_DIGITS) -> Decimal:
    if value == 0:
        return value
    exponent = value.adjusted() - digits + 1
    return value.quantize(Decimal(1).scaleb(exponent)).normalize()


def rates_for(
    base: str,
    symbols: Iterable[str] | None = None,
    *,
    amount: Decimal = Decimal(1),
    multiplier: Decimal = Decimal(1),
) -> dict[str, Decimal]:
    """What ``amount`` of ``base`` is worth in each of ``symbols`` (every other currency by
    default), each rate scaled by ``multiplier`` (a test's way to move the market)."""
    if base not in PER_US_DOLLAR:
        raise UnknownCurrency(base)
    wanted = sorted(set(symbols)) if symbols is not None else sorted(PER_US_DOLLAR)
    for code in wanted:
        if code not in PER_US_DOLLAR:
            raise UnknownCurrency(code)
    base_per_usd = PER_US_DOLLAR[base]
    return {
        code: _significant(amount * multiplier * PER_US_DOLLAR[code] / base_per_usd)
        for code in wanted
        if code != base
    }
