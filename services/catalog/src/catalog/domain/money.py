"""Money in integer minor units with its ISO 4217 currency, and prices shown in another
currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    """Minor units (cents for USD), never a float."""
    currency: str
    """ISO 4217 alphabetic code."""


@dataclass(frozen=True, slots=True)
class DisplayPrice:
    """A price converted for display: the converted money, the rate and its date, or
    why there is none (``error``; then ``price``, ``rate`` and ``as_of`` may be None)."""

    price: Money | None
    rate: Decimal | None
    as_of: datetime | None
    error: str | None = None
