"""ISO 4217 currencies: which codes exist, and how many decimals their minor unit has.

The table is the ``iso4217`` package's copy of the ISO 4217 list (the
maintenance agency's XML, shipped in the package and typed). A code is
*known* when it is on the list with a minor unit: the US dollar (2), the yen
(0), the Kuwaiti dinar (3)... Codes that are on the list without one (gold
``XAU``, the SDR ``XDR``, the testing code ``XTS``, "no currency" ``XXX``)
cannot price anything in integer minor units, so they are not known here.

Needs ``emporium-kit[currencies]`` (also part of ``[exchange-rates]``).
"""

from __future__ import annotations

from typing import Final

from iso4217 import Currency

_EXPONENTS: Final[dict[str, int]] = {
    currency.code: currency.exponent for currency in Currency if currency.exponent is not None
}

KNOWN_CURRENCIES: Final[frozenset[str]] = frozenset(_EXPONENTS)
"""Every known code, upper case."""


class UnknownCurrency(ValueError):
    """Not an ISO 4217 code with a minor unit."""

    def __init__(self, code: str) -> None:
        super().__init__(f"{code!r} is not an ISO 4217 currency code")
        self.code = code


def is_known_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 code with a minor unit. Exact: upper case, three
    letters (``"usd"`` is not known; normalise first if a client may send lower case)."""
    return code in _EXPONENTS


def minor_unit_exponent(code: str) -> int:
    """Decimals of ``code``'s minor unit: 2 for USD (cents), 0 for JPY, 3 for KWD."""
    try:
        return _EXPONENTS[code]
    except KeyError:
        raise UnknownCurrency(code) from None
